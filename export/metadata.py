"""What the device needs, travelling inside each model file.

TFLite: a JSON associated file appended to the flatbuffer as a zip archive (the layout TFLite
metadata tools use for associated files; interpreters ignore it, `zipfile` reads it).
ONNX: the same JSON under the `metadata_props` key `mnist_edge.json`. What the JSON holds, and how a
device checks it, is the model contract (edge.contract).
"""

from __future__ import annotations

import io
import zipfile

from edge.backends import TensorInfo
from edge.contract import DEFAULT_LABELS, DEFAULT_NORMALIZATION, METADATA_NAME, METADATA_SCHEMA


def _tensor(t: TensorInfo) -> dict:
    q = None if t.scale is None else {"scale": t.scale, "zero_point": t.zero_point}
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name, "quantization": q}


def build(fmt: str, precision: str, input_: TensorInfo, output: TensorInfo, provenance: dict,
          kind: str = "probabilities") -> dict:
    """kind: what the output holds, "probabilities" or "logits" (the Classifier applies softmax)."""
    inp = _tensor(input_) | {"layout": "NHWC"}
    return {
        "schema": METADATA_SCHEMA,
        "format": fmt,
        "precision": precision,
        "labels": DEFAULT_LABELS,
        "input": inp,
        "output": _tensor(output) | {"kind": kind},
        "normalization": DEFAULT_NORMALIZATION,
        **provenance,
    }


def tflite_with_metadata(flatbuffer: bytes, metadata: dict) -> bytes:
    import json

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(METADATA_NAME, json.dumps(metadata, indent=1))
    return flatbuffer + buf.getvalue()


def onnx_set_metadata(model_proto, metadata: dict) -> None:
    import json

    import onnx

    del model_proto.metadata_props[:]
    onnx.helper.set_model_props(model_proto, {METADATA_NAME: json.dumps(metadata)})
