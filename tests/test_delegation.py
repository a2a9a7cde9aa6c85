"""Every op of the exported int8 TFLite runs in XNNPACK, asked the way LiteRT exposes it."""

from __future__ import annotations

import pytest

pytest.importorskip("ai_edge_litert")


def _fully_accelerated(path) -> bool:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    return CompiledModel.from_file(str(path), hardware_accel=HardwareAccelerator.CPU).is_fully_accelerated()


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_fp32.tflite"])
def test_edge_model_is_fully_delegated(exported, name):
    out, _ = exported
    assert _fully_accelerated(out / name), name


def test_the_check_can_fail(tmp_path):
    """An int8 softmax is not XNNPACK's: a model ending in one is reported partly delegated."""
    tf = pytest.importorskip("tensorflow")
    import keras
    import numpy as np

    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax()])
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, 4), dtype=np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    (tmp_path / "m.tflite").write_bytes(conv.convert())
    assert not _fully_accelerated(tmp_path / "m.tflite")
