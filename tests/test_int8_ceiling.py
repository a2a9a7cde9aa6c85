"""benchmarks/int8_ceiling.py compares like with like: the same convolution, fp32 and full int8."""

from __future__ import annotations

import numpy as np
import pytest


def test_int8_and_fp32_convs_are_the_same_layer():
    pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks.int8_ceiling import conv_tflite, p50_us

    outs = []
    x = np.random.default_rng(1).random((1, 8, 8, 16), np.float32)
    for int8 in (False, True):
        flat = conv_tflite(8, 16, 32, int8)
        it = Interpreter(model_content=flat)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        assert i["dtype"] == (np.int8 if int8 else np.float32)
        if int8:
            s, z = i["quantization"]
            it.set_tensor(i["index"], np.clip(np.round(x / s) + z, -128, 127).astype(np.int8))
        else:
            it.set_tensor(i["index"], x)
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float32)
        if int8:
            s, z = o["quantization"]
            y = (y - z) * s
        outs.append(y)
        assert p50_us(flat, 30) > 0
    assert outs[0].shape == (1, 8, 8, 32)
    assert np.abs(outs[0] - outs[1]).max() <= 0.05 * np.abs(outs[0]).max()  # same weights, quantised
