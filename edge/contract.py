"""The model contract: what a .tflite or .onnx file must be for the device to read digits with it.

    >>> from edge.backends import open_backend
    >>> from edge.contract import check_model, parse_metadata
    >>> parse_metadata(b'{"labels": ["0"]}', "model_int8.tflite")  # dict, None, or ModelError
    Traceback (most recent call last):
    edge.contract.ModelError: model_int8.tflite: ...
    >>> backend = open_backend("models/model_int8.tflite")
    >>> labels, normalization = check_model("models/model_int8.tflite", backend, backend.metadata())
    >>> labels[:3], normalization["divide_by"], normalization["subtract"]
    (['0', '1', '2'], 255.0, 0.0)

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
  Absent fields take the defaults below, which are what training used; a .tflite's metadata archive
  that is there but cannot be read (a file cut short) is refused, not taken as absent;
- without output.kind "logits", the output is probabilities: the Classifier checks, when it loads,
  that a blank image gives 10 values in 0..1 summing to 1 (a logits model that lost its metadata
  would report scores above 1 as confidences).

It also holds the facts about the files around a model, so each is stated here once: the names
`mnist-edge export` gives its files, the manifest.json written beside them (read and written only
through `read_manifest` and `write_manifest`), and which runtime reads which file, through which
pip extra (RUNTIMES).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import UserError
from edge.provenance import atomic_write_json, sha256_file

METADATA_NAME = "mnist_edge.json"  # associated file appended to .tflite; ONNX metadata_props key
METADATA_SCHEMA = "mnist-edge/model-metadata/1"  # the metadata's "schema" field, as export writes it
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

# The files of an exported folder
FORMATS = {"tflite": ".tflite", "onnx": ".onnx"}  # --formats value -> file suffix
MODEL_SUFFIXES = tuple(FORMATS.values())  # the files a device can run
PRECISIONS = ("fp32", "int8")
KERAS_MODEL = "model.keras"  # the trained float model export starts from
TRAIN_REPORT = "train.json"  # beside it: how it was trained (train.train), its SHA-256 among it
MANIFEST = "manifest.json"  # beside the model files, written last: their hashes and provenance
MANIFEST_SCHEMA = "mnist-edge/manifest/1"
BENCH_REPORTS = ("bench.json", "bench.md", "bench.png")  # `mnist-edge bench` writes these beside the
#   files it measured: the results, their page, their plot (with matplotlib)


def model_file(precision: str, fmt: str) -> str:
    """The name export gives a model file: model_{fp32,int8}.{tflite,onnx}."""
    return f"model_{precision}{FORMATS[fmt]}"


EXPORTED = tuple(model_file(p, f) for f in FORMATS for p in PRECISIONS)  # every file export can write
DEFAULT_MODEL = model_file("int8", "tflite")  # the shipped model the device commands run by default


def locator_file(precision: str, fmt: str) -> str:
    """The name `mnist-edge locator` gives a digit-locator file: locator_{fp32,int8}.{tflite,onnx}."""
    return f"locator_{precision}{FORMATS[fmt]}"


LOCATORS = tuple(locator_file(p, f) for f in FORMATS for p in PRECISIONS)  # never a folder's classifier
LOCATOR_REPORT = "locator.json"  # beside them: settings, data, versions, held-out recall and precision


def rows_file(precision: str, fmt: str) -> str:
    """The name `mnist-edge rows` gives a row-reader file: rows_{fp32,int8}.{tflite,onnx}."""
    return f"rows_{precision}{FORMATS[fmt]}"


ROW_READERS = tuple(rows_file(p, f) for f in FORMATS for p in PRECISIONS)  # never a folder's classifier
ROWS_REPORT = "rows.json"  # beside them: settings, data, versions, held-out rows read exactly


@dataclass(frozen=True)
class Runtime:
    name: str            # the --runtime value
    module: str          # what is imported to run a model
    distribution: str    # its pip package, whose version is reported
    suffixes: tuple      # the model files it reads
    extra: str           # the mnist-edge pip extra that installs it


RUNTIMES = {r.name: r for r in (
    Runtime("litert", "ai_edge_litert.interpreter", "ai-edge-litert", (".tflite",), "edge"),
    Runtime("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime", (".tflite",), "edge-tflite"),
    Runtime("onnxruntime", "onnxruntime", "onnxruntime", (".onnx",), "edge-onnx"),
    Runtime("openvino", "openvino", "openvino", (".tflite", ".onnx"), "edge-openvino"),
)}
DEFAULT_RUNTIMES = {".tflite": ("litert", "tflite-runtime"), ".onnx": ("onnxruntime",)}  # tried in order
TFLITE_RUNTIMES = DEFAULT_RUNTIMES[".tflite"]  # same Interpreter API


def default_runtimes(suffix: str) -> tuple:
    """The runtimes tried, in order, for a file when no --runtime is given; a file that is not .onnx
    is tried as TFLite (whose loader then says what is wrong with it)."""
    return DEFAULT_RUNTIMES.get(suffix, TFLITE_RUNTIMES)


def extra_for(suffix: str) -> str:
    """The pip extra that lets this device run `suffix` files (that of its first default runtime)."""
    return RUNTIMES[default_runtimes(suffix)[0]].extra


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


def read_manifest(model_path: str | Path) -> dict | None:
    """manifest.json beside the model (or in the folder given), or None if there is none."""
    p = Path(model_path)
    return _read_listing((p if p.is_dir() else p.parent) / MANIFEST, "manifest")


def read_locator_report(folder: str | Path) -> dict | None:
    """locator.json in the folder (its "files" list the locator files' hashes, as a manifest does), or
    None if there is none."""
    return _read_listing(Path(folder) / LOCATOR_REPORT, "locator report")


def read_rows_report(folder: str | Path) -> dict | None:
    """rows.json in the folder (its "files" list the row reader's files' hashes), or None."""
    return _read_listing(Path(folder) / ROWS_REPORT, "row-reader report")


def _read_listing(path: Path, what: str) -> dict | None:
    """A JSON object whose "files" maps file names to {"sha256": ..., "bytes": ...}; None if absent."""
    if not path.is_file():
        return None
    try:
        listing = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON {what} ({e})") from None
    if not isinstance(listing, dict):
        raise UserError(f"{path}: expected a JSON object")
    files = listing.get("files", {})
    if not isinstance(files, dict):
        raise UserError(f"{path}: 'files' is a {type(files).__name__}, expected an object "
                        "{file name: {\"sha256\": ..., \"bytes\": ...}}")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256", ""), str):
            raise UserError(f"{path}: 'files' entry {name!r} is not an object with a \"sha256\" string")
    return listing


def file_entry(path: str | Path) -> dict:
    """What a manifest or locator report lists for one file: its size and SHA-256."""
    return {"bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}


def remove_manifest(folder: str | Path) -> None:
    """Before an export writes its files: a stale manifest must not vouch for new ones."""
    (Path(folder) / MANIFEST).unlink(missing_ok=True)


def write_manifest(folder: str | Path, manifest: dict) -> Path:
    """Write the manifest (last, after the files it lists), atomically, with its schema first."""
    path = Path(folder) / MANIFEST
    atomic_write_json(path, {"schema": MANIFEST_SCHEMA} | manifest)
    return path


def failed_validation(entry: dict) -> str:
    """Why `mnist-edge export` marked this manifest entry ✗ (exit 1 then, but the file is written and
    a device would run it), in a few words; "" when it passed or the manifest does not say."""
    v = entry.get("validation") or {}
    if v.get("ok", True):
        return ""
    f = v.get("figures") or {}
    if v.get("error"):
        return (str(v["error"]).strip().splitlines() or ["?"])[0]  # one line: it goes into one
    if "delta_pp" in f:
        return (f"{100 * f['accuracy']:.2f} % on MNIST test, {f['delta_pp']:+.2f} pp against Keras "
                f"(at most {f.get('max_drop_pp', '?')} pp lower allowed)")
    if "max_abs_diff" in f:
        return f"outputs up to {f['max_abs_diff']:.1e} away from Keras's"
    return "see its manifest entry"


def incomplete_export(folder: str | Path) -> list[str]:
    """Model files `mnist-edge export` wrote in `folder` with no manifest.json beside them: an export
    that was interrupted (the manifest is written last) or files copied without it. [] otherwise."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return []
    return [name for name in EXPORTED if (folder / name).is_file()]


@dataclass
class FileHash:
    name: str            # file name in the folder
    sha256: str | None   # the file's; None when it is not there
    listed: str | None   # what the manifest says; None when it lists no hash for it


def hash_files(folder: str | Path, manifest: dict | None, names=None) -> list[FileHash]:
    """Each of `names` (default: every model file in `folder` and every file the manifest lists),
    hashed, beside the hash the manifest gives it."""
    folder, listed = Path(folder), (manifest or {}).get("files", {})
    if names is None:
        names = sorted({p.name for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES} | set(listed))
    return [FileHash(n, sha256_file(folder / n) if (folder / n).is_file() else None,
                     (listed.get(n) or {}).get("sha256")) for n in names]
