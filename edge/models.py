"""Where the shipped files are: the model the device commands run when no --model is given, and the
digit locator they find digits with when no --locator is given.

    >>> from edge.models import default_model, resolve_locator
    >>> path = default_model()                  # ./models/model_int8.tflite, else <repo>/models/...
    >>> resolve_locator(None, path).name        # the shipped locator, beside the model
    'locator_int8.tflite'
    >>> resolve_locator("none", path) is None   # --locator none: find digits by segmentation
    True

The device commands (camera, predict, doctor) use `default_model()` when no --model is given. The
file names and the manifest beside the files are the model contract's (edge.contract).
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.contract import DEFAULT_MODEL, RUNTIMES, locator_file, model_file, rows_file
from edge.errors import UserError, missing

log = logging.getLogger(__name__)

MODEL_HELP = ("a .tflite or .onnx model (default: the shipped models/model_int8.tflite, or "
              "models/model_int8.onnx with --runtime onnxruntime)")
NO_LOCATOR = "none"  # --locator none: find digits by segmentation alone
LOCATOR_HELP = ("find digits with this locator .tflite/.onnx (default: the shipped "
                "models/locator_int8.tflite, or .onnx for an .onnx model or openvino); "
                f"'{NO_LOCATOR}': by segmentation alone (faster, fewer digits found on a desk)")
NO_ROWS = "none"  # --rows none: each located digit's crop read by the classifier
ROWS_HELP = ("read the digits the locator finds a row at a time with this row reader .tflite/.onnx "
             "(default: the shipped models/rows_int8.tflite, or .onnx for an .onnx model or openvino); "
             f"'{NO_ROWS}': each located digit's crop read by the classifier")


def model_dirs() -> list[Path]:
    """The folders searched for the shipped model, in order: ./models, then <repo>/models."""
    here = Path.cwd() / "models"
    repo = Path(__file__).resolve().parent.parent / "models"
    return [here] if here.resolve() == repo.resolve() else [here, repo]


def default_name(runtime: str | None = None) -> str:
    """The shipped int8 model's file name: the .tflite, or the .onnx for a --runtime that reads no
    .tflite (onnxruntime)."""
    rt = RUNTIMES.get(runtime or "")
    return DEFAULT_MODEL if rt is None or ".tflite" in rt.suffixes else model_file("int8", "onnx")


def find_default_model(runtime: str | None = None) -> Path | None:
    """The first models/model_int8.tflite (`default_name`) found, or None."""
    name = default_name(runtime)
    for d in model_dirs():
        if (d / name).is_file():
            return d / name
    return None


def default_model(runtime: str | None = None) -> Path:
    """The shipped int8 model; a UserError naming where it was looked for if there is none."""
    path = find_default_model(runtime)
    if path is None:
        where = " or ".join(str(d / default_name(runtime)) for d in model_dirs())
        raise UserError(f"--model: no model given and none shipped ({where} not found); "
                        "pass --model PATH to a .tflite or .onnx file from `mnist-edge export`")
    return path


def resolve_model(model: str | Path | None, runtime: str | None = None) -> Path:
    """--model as given (must exist), or the shipped default for `runtime` when None."""
    if model is None:
        return default_model(runtime)
    path = Path(model)
    if not path.is_file():
        raise UserError(f"--model {model}: {missing(model)}")
    return path



def locator_name(model: Path, runtime: str | None = None) -> str:
    """The shipped int8 locator's file name in the model's format (.onnx for OpenVINO, which does not
    report a .tflite's int8 input and output scales)."""
    return locator_file("int8", "onnx" if model.suffix == ".onnx" or runtime == "openvino" else "tflite")


def default_locator(model: Path, runtime: str | None = None) -> Path | None:
    """The shipped int8 locator (`locator_name`): beside the model, else in ./models or
    <repo>/models; None if there is none."""
    return _beside(model, locator_name(model, runtime))


def _beside(model: Path, name: str) -> Path | None:
    """`name` beside the model, else in ./models or <repo>/models; None if in none of them."""
    for d in [model.parent, *model_dirs()]:
        if (d / name).is_file():
            return d / name
    return None


def resolve_rows(rows: str | None, model: Path, runtime: str | None = None) -> Path | None:
    """--rows as given (must exist); "none": None (crops read one by one); None: the shipped int8 row
    reader in the model's format (as `locator_name` picks), or None when there is none."""
    if rows == NO_ROWS:
        return None
    if rows is None:
        return _beside(model, rows_file("int8", "onnx" if model.suffix == ".onnx" or runtime == "openvino"
                                        else "tflite"))
    path = Path(rows)
    if not path.is_file():
        raise UserError(f"--rows {rows}: {missing(rows)} (expected a row reader .tflite or .onnx, "
                        f"or '{NO_ROWS}' to read each located digit's crop)")
    return path


def resolve_locator(locator: str | None, model: Path, runtime: str | None = None) -> Path | None:
    """--locator as given (must exist); "none": None (segmentation); None: the shipped locator, or
    None when there is none (a device given only the model file: `warn_if_segmenting` says so
    once the model has loaded)."""
    if locator == NO_LOCATOR:
        return None
    if locator is None:
        return default_locator(model, runtime)
    path = Path(locator)
    if not path.is_file():
        raise UserError(f"--locator {locator}: {missing(locator)} (expected a locator .tflite or .onnx, "
                        f"or '{NO_LOCATOR}' for segmentation)")
    return path


def locator_flag(locator: str | None, flag: str = "--locator") -> str:
    """How an error names the locator file `resolve_locator` returned: by the flag that gave it, or
    as the shipped one it found (the user gave no flag to blame)."""
    return "the shipped locator" if locator is None else flag


def warn_if_segmenting(locator: str | None, path: Path | None, model: Path, runtime: str | None) -> None:
    """One warning when no --locator was given and no shipped one was found (`resolve_locator`)."""
    if locator is None and path is None:
        log.warning("no %s beside %s or in %s: finding digits by segmentation (--locator FILE to give "
                    "one, --locator none to say so)", locator_name(model, runtime), model,
                    " or ".join(str(d) for d in model_dirs()))
