"""Where the shipped model is, and the manifest.json that travels beside every exported model.

    >>> from edge.models import default_model, load_manifest
    >>> path = default_model()                  # ./models/model_int8.tflite, else <repo>/models/...
    >>> (load_manifest(path) or {}).get("files", {}).keys()

The device commands (camera, predict, doctor) use `default_model()` when no --model is given.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge.errors import UserError

DEFAULT_MODEL = "model_int8.tflite"  # the shipped model the device commands run by default
MANIFEST = "manifest.json"  # written by `mnist-edge export` beside the model files, last
EXPORTED = ("model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")  # its files


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


def load_manifest(model_path: str | Path) -> dict | None:
    """manifest.json beside the model (or in the folder given), or None if there is none."""
    p = Path(model_path)
    path = (p if p.is_dir() else p.parent) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON manifest ({e})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: expected a JSON object")
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise UserError(f"{path}: 'files' is a {type(files).__name__}, expected an object "
                        "{file name: {\"sha256\": ..., \"bytes\": ...}}")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256", ""), str):
            raise UserError(f"{path}: 'files' entry {name!r} is not an object with a \"sha256\" string")
    return manifest


def incomplete_export(folder: str | Path) -> list[str]:
    """Model files `mnist-edge export` wrote in `folder` with no manifest.json beside them: an export
    that was interrupted (the manifest is written last) or files copied without it. [] otherwise."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return []
    return [name for name in EXPORTED if (folder / name).is_file()]
