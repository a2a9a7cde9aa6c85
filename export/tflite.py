"""Keras -> TFLite (LiteRT), fp32 or full-integer int8.

    >>> from export import tflite
    >>> from train.model import build_model
    >>> flat = tflite.export(build_model("edge"), "fp32")   # the converter prints its TensorSpecs
    Saved artifact at ...
    >>> flat[4:8]                                           # the TFLite file identifier
    b'TFL3'

An exporter module (`export/onnx.py` is the other) has FORMAT, SUFFIX, RUNTIME and the same five
functions, so `export/cli.py` drives both through one table:
`export()` converts (here to the flatbuffer bytes; the batch dimension stays dynamic), `to_bytes()`
serialises that, `save()` embeds the metadata and writes the file atomically, `validate()` loads
the written file in LiteRT and checks it, and `debug()` writes per-layer quantisation errors.
The settings come from an `export.cli.ExportConfig` (None: its defaults).
"""

from __future__ import annotations

import logging

from edge.provenance import atomic_write_bytes
from export.calibration import Calibration, tflite_representative_dataset
from export.metadata import tflite_with_metadata
from export.validate import Reference, Validation
from export.validate import validate as _validate

log = logging.getLogger(__name__)
FORMAT, SUFFIX, RUNTIME = "tflite", ".tflite", "litert"
IO_TYPES = ("int8", "float")  # an int8 model's input and output: int8 tensors, or float ones


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


def _io(cfg) -> str:
    if cfg is None:
        from export.cli import ExportConfig

        cfg = ExportConfig()
    return cfg.io


def export(model, precision: str, calib: Calibration | None = None, cfg=None) -> bytes:
    """The TFLite flatbuffer; int8 quantises weights and activations with `calib`, cfg.io in and out."""
    io = _io(cfg)
    log.info("converting to TFLite %s%s", precision, f" ({io} I/O)" if precision == "int8" else "")
    return _converter(model, precision, calib, io).convert()


def to_bytes(flat: bytes) -> bytes:
    return flat


def save(flat: bytes, metadata: dict, path) -> None:
    """The flatbuffer with `metadata` embedded, written atomically to `path`."""
    atomic_write_bytes(path, tflite_with_metadata(flat, metadata))


def debug(model, calib: Calibration, cfg, written: dict, csv_path) -> None:
    """Per-layer quantisation error (TFLite's QuantizationDebugger) as CSV; it converts `model`
    again, so `written` (precision -> file) is not read."""
    import tensorflow as tf

    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=_converter(model, "int8", calib, _io(cfg)),
        debug_dataset=tflite_representative_dataset(calib))
    debugger.run()
    with open(csv_path, "w") as f:
        debugger.layer_statistics_dump(f)


def validate(path, precision: str, ref: Reference, max_drop_pp: float) -> Validation:
    return _validate(path, RUNTIME, precision, ref, max_drop_pp)
