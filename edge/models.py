"""Where the shipped model is: the model the device commands run when no --model is given.

    >>> from edge.models import default_model
    >>> path = default_model()                  # ./models/model_int8.tflite, else <repo>/models/...

The device commands (camera, predict, doctor) use `default_model()` when no --model is given. The
file names and the manifest beside the files are the model contract's (edge.contract).
"""

from __future__ import annotations

from pathlib import Path

from edge.contract import DEFAULT_MODEL
from edge.errors import UserError


def model_dirs() -> list[Path]:
    """The folders searched for the shipped model, in order: ./models, then <repo>/models."""
    here = Path.cwd() / "models"
    repo = Path(__file__).resolve().parent.parent / "models"
    return [here] if here.resolve() == repo.resolve() else [here, repo]


def find_default_model() -> Path | None:
    """The first models/model_int8.tflite found, or None."""
    for d in model_dirs():
        if (d / DEFAULT_MODEL).is_file():
            return d / DEFAULT_MODEL
    return None


def default_model() -> Path:
    """The shipped int8 model; a UserError naming where it was looked for if there is none."""
    path = find_default_model()
    if path is None:
        where = " or ".join(str(d / DEFAULT_MODEL) for d in model_dirs())
        raise UserError(f"--model: no model given and none shipped ({where} not found); "
                        "pass --model PATH to a .tflite or .onnx file from `mnist-edge export`")
    return path


def resolve_model(model: str | Path | None) -> Path:
    """--model as given (must exist), or the shipped default when None."""
    if model is None:
        return default_model()
    path = Path(model)
    if not path.is_file():
        raise UserError(f"--model {model}: no such file")
    return path

