"""Keras -> ONNX (tf2onnx from a tf.function), fp32 or int8 QDQ with onnxruntime's static quantiser.

    >>> from export import onnx
    >>> from train.model import build_model
    >>> proto = onnx.export(build_model("edge"), "fp32")
    >>> [i.name for i in proto.graph.input], proto.opset_import[0].version
    (['image'], 17)

Mirrors `export/tflite.py` function for function: `export()` returns the model (a ModelProto, batch
dimension dynamic), `save()` embeds the metadata and writes it atomically, `validate()` loads the
written file in onnxruntime and checks it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from edge.provenance import atomic_path
from export.calibration import Calibration, ort_calibration_reader
from export.metadata import onnx_set_metadata
from export.validate import Reference, Validation
from export.validate import validate as _validate

log = logging.getLogger(__name__)
FORMAT, SUFFIX, RUNTIME = "onnx", ".onnx", "onnxruntime"
OPSET = 17
OPSETS = range(13, 19)  # per-channel QDQ needs 13; tf2onnx 1.17 converts up to 18
INPUT_NAME = "image"
CALIB_METHODS = ("minmax", "entropy", "percentile")
# 7-bit weights. x86 CPUs without VNNI (AVX2, plain AVX-512) multiply u8 x s8 pairs into int16 with
# saturation (vpmaddubsw); with full 8-bit weights the default model lost 0.31 pp there (99.23 % vs
# 99.54 % on an AMD EPYC with AVX2 only, onnxruntime 1.31 and 1.32), and nothing with 7 bits.
REDUCE_RANGE = True
# uint8 activations (x int8 weights): the pair x86 int8 instructions multiply natively (VPMADDUBSW,
# VNNI's VPDPBUSD), which onnxruntime and OpenVINO both run. Same accuracy and onnxruntime speed as
# int8 activations on an AMD EPYC (99.50 % both; 47.8 vs 48.4 µs, fp32 58.4 µs, one thread), and
# OpenVINO's CPU plugin runs the convolutions in u8 without the i8 -> u8 conversions int8 input needs.
# QOperator (QLinearConv...) was 5x slower with int8 activations in onnxruntime, and OpenVINO cannot
# read its QGemm/QLinearGlobalAveragePool, so the format stays QDQ.
ACTIVATIONS = "uint8"


def _fp32(model, opset: int):
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME),)
    fn = tf.function(lambda image: model(image, training=False))
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    return proto


def export(model, precision: str, calib: Calibration | None = None, cfg=None):
    """An onnx.ModelProto; int8 is QDQ (int8 weights per channel, uint8 activations), calibrated with
    cfg.calib_method, cfg.per_channel weight scales, at cfg.opset."""
    import onnx

    if cfg is None:
        from export.cli import ExportConfig

        cfg = ExportConfig()
    method, per_channel, opset = cfg.calib_method, cfg.per_channel, cfg.opset
    log.info("converting to ONNX %s (opset %d)", precision, opset)
    proto = _fp32(model, opset)
    if precision == "fp32":
        return proto
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, prep, q = (Path(tmp) / n for n in ("fp32.onnx", "prep.onnx", "int8.onnx"))
        onnx.save(proto, fp32)
        quant_pre_process(str(fp32), str(prep))
        log.info("quantising ONNX with %d calibration images (%s)", len(calib.images), method)
        quantize_static(str(prep), str(q), ort_calibration_reader(calib, INPUT_NAME),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8 if ACTIVATIONS == "uint8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8,
                        reduce_range=REDUCE_RANGE, calibrate_method=methods[method])
        return onnx.load(q)


def to_bytes(proto) -> bytes:
    return proto.SerializeToString()


def save(proto, metadata: dict, path) -> None:
    """The model with `metadata` in its metadata_props, written atomically to `path`."""
    import onnx

    onnx_set_metadata(proto, metadata)
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)


def debug(model, calib: Calibration, cfg, written: dict, csv_path) -> None:
    """Per-tensor quantisation error (onnxruntime's qdq_loss_debug) as CSV: SQNR per activation,
    between the written files (`written`: precision -> path); `model` and `cfg` are not needed."""
    model_fp32_path, model_int8_path = written["fp32"], written["int8"]
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory() as tmp:
        aug_f, aug_q = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        modify_model_output_intermediate_tensors(str(model_fp32_path), str(aug_f))
        modify_model_output_intermediate_tensors(str(model_int8_path), str(aug_q))
        act_f = collect_activations(str(aug_f), ort_calibration_reader(calib, INPUT_NAME))
        act_q = collect_activations(str(aug_q), ort_calibration_reader(calib, INPUT_NAME))
    matching = create_activation_matching(act_q, act_f)
    for m in matching.values():  # tensors the optimiser renamed have no float twin
        m.setdefault("float", None)
    errors = compute_activation_error(matching)
    with open(csv_path, "w") as f:
        f.write("tensor,qdq_sqnr_db,xmodel_sqnr_db\n")
        for name, e in errors.items():
            f.write(f"{name},{e.get('qdq_err', float('nan')):.3f},{e.get('xmodel_err', float('nan')):.3f}\n")


def validate(path, precision: str, ref: Reference, max_drop_pp: float) -> Validation:
    return _validate(path, RUNTIME, precision, ref, max_drop_pp)
