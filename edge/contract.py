"""The model contract: what a .tflite or .onnx file must be for the device to read digits with it.

    >>> from edge.contract import check_model, parse_metadata
    >>> meta = parse_metadata(raw_json_bytes, "model_int8.tflite")     # dict, None, or ModelError
    >>> labels, normalization = check_model("model_int8.tflite", backend, meta)

Every model `mnist-edge export` writes follows it, and a model from elsewhere is held to it when it
loads, once, so a wrong one is refused with one line naming the file and the field instead of
giving nonsense readings later. The facts:

- one input, NHWC (N, 28, 28, 1), float32, int8 or uint8; one output (N, 10), the same types;
- an integer input or output carries its quantisation (scale > 0, an integer zero point in range):
  TFLite in the tensor itself, ONNX in the metadata;
- the metadata (optional; JSON, METADATA_NAME in the file) is an object. Its fields, each optional,
  are checked when present:
    labels         a list of NUM_CLASSES non-empty strings, one per output, in order
    normalization  {"divide_by": a finite non-zero number, "subtract": a finite number, ...}:
                   model input = pixel / divide_by - subtract
    input, output  objects; "quantization" null or {"scale": number > 0, "zero_point": integer}
    output.kind    "probabilities" or "logits" (the Classifier applies softmax to logits)
  Absent fields take the defaults below, which are what training used.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from edge.errors import UserError

METADATA_NAME = "mnist_edge.json"  # associated file appended to .tflite; ONNX metadata_props key
NUM_CLASSES = 10  # output width: one probability per digit 0..9
INPUT_SHAPE = (28, 28, 1)  # per image, after the batch dimension (NHWC)
TENSOR_DTYPES = ("float32", "int8", "uint8")  # input and output element types the Classifier handles
OUTPUT_KINDS = ("probabilities", "logits")
DEFAULT_NORMALIZATION = {
    "divide_by": 255.0,           # model input = pixel / divide_by - subtract
    "subtract": 0.0,
    "polarity": "white-on-black",  # ink is bright, paper is 0
    "centring": "longest side 20 px in a 28x28 box, centre of mass at the centre (as MNIST)",
}
DEFAULT_LABELS = [str(d) for d in range(NUM_CLASSES)]


class ModelError(UserError):
    """A model file that does not follow the contract (names the file and the field)."""


def _name(path) -> str:
    from edge.images import shown

    return shown(path)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_quantization(path, field: str, q) -> None:
    if q is None:
        return
    if not isinstance(q, dict):
        raise ModelError(f"{_name(path)}: metadata {field}.quantization is a {type(q).__name__}, "
                         "expected null or {\"scale\": number > 0, \"zero_point\": integer}")
    if not _number(q.get("scale")) or q["scale"] <= 0:
        raise ModelError(f"{_name(path)}: metadata {field}.quantization.scale is {q.get('scale')!r}, "
                         "expected a number > 0")
    if not isinstance(q.get("zero_point"), int) or isinstance(q["zero_point"], bool):
        raise ModelError(f"{_name(path)}: metadata {field}.quantization.zero_point is "
                         f"{q.get('zero_point')!r}, expected an integer")


def parse_metadata(raw: bytes | str | None, path: str | Path) -> dict | None:
    """The model's metadata JSON, checked field by field (see the module docstring); None if absent."""
    if raw is None or raw in (b"", ""):
        return None
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{_name(path)}: metadata {METADATA_NAME} is not valid JSON ({e})") from None
    return check_metadata(meta, path)


def check_metadata(meta, path: str | Path) -> dict:
    """The parsed metadata, field by field; ModelError naming the file and the first wrong field."""
    if not isinstance(meta, dict):
        raise ModelError(f"{_name(path)}: metadata {METADATA_NAME} is a JSON {type(meta).__name__}, "
                         "expected an object")
    if "labels" in meta:
        labels = meta["labels"]
        if not isinstance(labels, list) or len(labels) != NUM_CLASSES or not all(
                isinstance(x, str) and x for x in labels):
            got = f"{len(labels)} entries" if isinstance(labels, list) else f"a {type(labels).__name__}"
            raise ModelError(f"{_name(path)}: metadata labels is {got}, expected a list of {NUM_CLASSES} "
                             "non-empty strings")
    if "normalization" in meta:
        norm = meta["normalization"]
        if not isinstance(norm, dict):
            raise ModelError(f"{_name(path)}: metadata normalization is a {type(norm).__name__}, "
                             "expected an object with divide_by and subtract")
        for key in ("divide_by", "subtract"):
            value = norm.get(key, DEFAULT_NORMALIZATION[key])
            if not _number(value) or (key == "divide_by" and value == 0):
                want = "a finite non-zero number" if key == "divide_by" else "a finite number"
                raise ModelError(f"{_name(path)}: metadata normalization.{key} is {value!r}, "
                                 f"expected {want}")
    for field in ("input", "output"):
        if field not in meta:
            continue
        if not isinstance(meta[field], dict):
            raise ModelError(f"{_name(path)}: metadata {field} is a {type(meta[field]).__name__}, "
                             "expected an object")
        _check_quantization(path, field, meta[field].get("quantization"))
    kind = meta.get("output", {}).get("kind", OUTPUT_KINDS[0])
    if kind not in OUTPUT_KINDS:
        raise ModelError(f"{_name(path)}: metadata output.kind is {kind!r}, expected "
                         f"{' or '.join(OUTPUT_KINDS)}")
    return meta


def _check_tensor(path, field: str, spec, count: int, shape: tuple) -> None:
    if count != 1:
        raise ModelError(f"{_name(path)}: {count} {field}s, expected exactly one")
    got = tuple(spec.shape)
    if len(got) != len(shape) + 1 or got[1:] != shape:
        raise ModelError(f"{_name(path)}: {field} shape {got}, expected (N, {', '.join(map(str, shape))})")
    if np.dtype(spec.dtype).name not in TENSOR_DTYPES:
        raise ModelError(f"{_name(path)}: {field} type {np.dtype(spec.dtype).name}, expected one of "
                         f"{', '.join(TENSOR_DTYPES)}")
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        if spec.scale is None or not _number(spec.scale) or spec.scale <= 0:
            raise ModelError(f"{_name(path)}: {field} is {np.dtype(spec.dtype).name} without a "
                             f"quantisation scale > 0 (metadata {field}.quantization)")
        if spec.zero_point is None or not info.min <= spec.zero_point <= info.max:
            raise ModelError(f"{_name(path)}: {field} zero point {spec.zero_point}, expected an integer "
                             f"in {info.min}..{info.max}")


def check_model(path: str | Path, backend, metadata: dict | None) -> tuple[list[str], dict]:
    """Hold a loaded model to the contract; (labels, normalization) to use, or ModelError."""
    meta = check_metadata(metadata, path) if metadata is not None else {}  # whichever backend read it
    _check_tensor(path, "input", backend.input, getattr(backend, "n_inputs", 1), INPUT_SHAPE)
    _check_tensor(path, "output", backend.output, getattr(backend, "n_outputs", 1), (NUM_CLASSES,))
    return meta.get("labels", DEFAULT_LABELS), DEFAULT_NORMALIZATION | meta.get("normalization", {})
