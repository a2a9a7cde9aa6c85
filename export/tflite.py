"""Keras -> TFLite (LiteRT), fp32 or full-integer int8.

    >>> import keras
    >>> from export import tflite
    >>> flat = tflite.export(keras.models.load_model("artifacts/model.keras"), "fp32")

`export()` returns the flatbuffer (the batch dimension stays dynamic); the caller embeds metadata
and writes it atomically. `validate()` loads the written file in LiteRT and checks it.
"""

from __future__ import annotations

import logging

from export.calibration import Calibration, tflite_representative_dataset
from export.validate import Reference, Validation
from export.validate import validate as _validate

log = logging.getLogger(__name__)
FORMAT, SUFFIX, RUNTIME = "tflite", ".tflite", "litert"


def _converter(model, precision: str, calib: Calibration | None, io: str):
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = tflite_representative_dataset(calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv


def export(model, precision: str, calib: Calibration | None = None, io: str = "int8") -> bytes:
    """The TFLite flatbuffer; int8 quantises weights and activations with `calib`."""
    log.info("converting to TFLite %s%s", precision, f" ({io} I/O)" if precision == "int8" else "")
    return _converter(model, precision, calib, io).convert()


def debug(model, calib: Calibration, io: str, csv_path) -> None:
    """Per-layer quantisation error (TFLite's QuantizationDebugger) as CSV."""
    import tensorflow as tf

    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=_converter(model, "int8", calib, io),
        debug_dataset=tflite_representative_dataset(calib))
    debugger.run()
    with open(csv_path, "w") as f:
        debugger.layer_statistics_dump(f)


def validate(path, precision: str, ref: Reference, max_drop_pp: float) -> Validation:
    return _validate(path, RUNTIME, precision, ref, max_drop_pp)
