"""`mnist-edge doctor`: what this device has, what is missing, and whether the model can run here.

    mnist-edge doctor                          # the shipped models/model_int8.tflite
    mnist-edge doctor --runtime onnxruntime    # the shipped model_int8.onnx, as predict and camera would
    mnist-edge doctor --model artifacts/       # every model in a folder, hashes against its manifest

Prints Python, platform, numpy (and its ABI: interpreters built for numpy 1 cannot load under 2),
each interpreter, the camera libraries, each model file's SHA-256 against manifest.json (✓/✗), and
whether each model loads and runs in each installed runtime that can take it (in --runtime alone
when given), and whether the digit locator camera and predict use by default is there and runs.
Exit 0 when a model runs in a runtime, no file disagrees with its manifest and the locator (if
found) runs; 1 otherwise, with what to do.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import __version__
from edge.backends import runtime_status
from edge.capture import picamera2_broken
from edge.contract import (
    DEFAULT_MODEL,
    LOCATOR_REPORT,
    LOCATORS,
    MANIFEST,
    MODEL_SUFFIXES,
    ROW_READERS,
    ROWS_REPORT,
    RUNTIMES,
    default_runtimes,
    extra_for,
    failed_validation,
    hash_files,
    incomplete_export,
    read_locator_report,
    read_manifest,
    read_rows_report,
)
from edge.device import emulated, int8_line, numpy_abi, read_cpu
from edge.errors import UserError
from edge.models import (
    default_locator,
    default_name,
    find_default_model,
    locator_flag,
    model_dirs,
    resolve_rows,
)

OK, BAD, NA = "✓", "✗", "-"


@dataclass
class FileCheck:
    name: str  # file name
    status: str  # OK: hash matches; BAD: differs; NA: listed in the manifest but not here; "?": unlisted
    detail: str  # what was compared
    failed_validation: bool = False  # its hash matches, but export marked it failed (BAD)
    differs: str = ""  # BAD by its hash: which listing it differs from, expected and found, briefly


def check_files(folder: Path, manifest: dict | None, locator_report: dict | None = None,
                rows_report: dict | None = None) -> list[FileCheck]:
    """Each model file in `folder` and each file the manifest lists, hashed against the manifest; the
    digit locator's files against its own report (locator.json), which lists them as a manifest does,
    and the row reader's against rows.json. A locator or row-reader file listed there but not here is
    not reported: both are optional."""
    apart = {names: (report_name, report) for names, report_name, report in
             ((LOCATORS, LOCATOR_REPORT, locator_report), (ROW_READERS, ROWS_REPORT, rows_report))}
    located = {n: e for names, (_, report) in apart.items()
               for n, e in (report or {}).get("files", {}).items() if n in names}
    exported = (manifest or {}).get("files", {})
    present = {p.name for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES}
    out = []

    def report_of(name: str) -> tuple[str, dict | None]:
        return next(((r, report) for names, (r, report) in apart.items() if name in names),
                    ("the manifest", manifest))

    for h in hash_files(folder, {"files": exported | located}, sorted(present | set(exported))):
        name, got, want = h.name, h.sha256, h.listed
        source = report_of(name)[0] if name in located else "the manifest"
        if got is None:
            out.append(FileCheck(name, NA, f"listed in {source}, not here"))
        elif want is None:
            source, listing = report_of(name)
            out.append(FileCheck(name, "?", f"no {source.removeprefix('the ')}: not checked"
                                 if listing is None else f"not in {source}: not checked"))
        elif got != want:
            listing = source if name in located else MANIFEST
            out.append(FileCheck(name, BAD, f"sha256 {got[:12]}… but {source} says {want[:12]}… "
                                            "(changed or corrupt)",
                                 differs=f"{name} differs from its {listing} (sha256 {want[:12]}… "
                                         f"expected, {got[:12]}… found)"))
        elif (failed := failed_validation(exported.get(name, {}))) and name not in located:
            out.append(FileCheck(name, BAD, f"sha256 {got[:12]}… matches {source}, but it failed "
                                            f"export's validation: {failed}", failed_validation=True))
        else:
            out.append(FileCheck(name, OK, f"sha256 {got[:12]}… matches {source}"))
    return out


def _failure(e: Exception) -> str:
    """An exception in one short line: its class (not for our own UserError, whose message is
    written for the user) and its message's first line."""
    first = str(e).splitlines()[0] if str(e) else ""
    return (first if isinstance(e, UserError) else f"{e.__class__.__name__}: {first}")[:160]


def try_model(path: Path, runtime: str) -> tuple[bool, str]:
    """Load the model in this runtime and classify one blank digit: (ok, what happened)."""
    from edge.classifier import Classifier

    try:
        clf = Classifier(path, runtime, threads=1)
        clf.classify(np.zeros((1, 28, 28), np.uint8))
        clf.classify(np.zeros((1, 28, 28), np.uint8))  # the second call is the steady-state one
    except Exception as e:
        return False, _failure(e)
    spec, t = clf.backend.input, clf.last_timing
    if emulated():  # an emulator's time says nothing about the board's
        return True, f"input {spec.dtype} {tuple(spec.shape)}, runs (emulated: no time)"
    return True, (f"input {spec.dtype} {tuple(spec.shape)}, "
                  f"{t.preprocess_ms + t.inference_ms + t.postprocess_ms:.2f} ms per digit")


def try_locator(path: Path, runtime: str) -> tuple[bool, str]:
    """Load the locator in this runtime and locate digits on a blank page: (ok, what happened)."""
    from edge.locator import Locator

    try:
        found = Locator(path, runtime, flag=locator_flag(None)).locate(np.full((480, 640), 200, np.uint8))
    except Exception as e:
        return False, _failure(e)
    return True, f"runs ({len(found)} digits on a blank page)"


def _numpy_line() -> str:
    major = int(np.__version__.split(".")[0])
    if major >= 2:
        return f"{np.__version__} (numpy 2 ABI: interpreters built against numpy 1, such as " \
               "tflite-runtime 2.14, need numpy<2)"
    return f"{np.__version__} (numpy 1 ABI: wheels built for numpy 2 only will not load)"


def _cv2_line() -> tuple[bool, str]:
    try:
        import cv2
    except Exception as e:
        return False, f"not importable ({e.__class__.__name__}: {e}); pip install 'mnist-edge[camera]'"
    gui = next((ln.split(":", 1)[1].strip() for ln in cv2.getBuildInformation().splitlines()
                if ln.strip().startswith("GUI:")), "?")
    windows = "no window support: use --serve, not --show" if gui.upper() == "NONE" else f"GUI {gui}"
    return True, f"{cv2.__version__} ({windows})"


def _picamera2_line() -> tuple[bool, str]:
    try:
        importlib.import_module("picamera2")
    except Exception as e:
        if not (isinstance(e, ModuleNotFoundError) and e.name == "picamera2"):
            return False, picamera2_broken(e)
        return False, ("not installed (only for --source picamera on a Raspberry Pi: sudo apt install "
                       "python3-picamera2, in a venv made with --system-site-packages, with the "
                       "picamera extra)")
    try:
        return True, importlib.metadata.version("picamera2")
    except importlib.metadata.PackageNotFoundError:
        return True, "installed"


def _paho_line() -> tuple[bool, str]:
    try:
        importlib.import_module("paho.mqtt.client")
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and (e.name or "").startswith("paho"):
            return False, ("not installed (only for camera --mqtt and bench --mqtt: pip install "
                           "'mnist-edge[mqtt]')")
        return False, f"not importable ({e.__class__.__name__}: {e})"
    return True, importlib.metadata.version("paho-mqtt")


def _models(arg: str | None, runtime: str | None = None) -> tuple[Path | None, list[Path]]:
    """(folder whose manifest applies, model files to try): without --model, the shipped model
    predict and camera would take for this --runtime (`edge.models.find_default_model`); with it,
    the files --runtime can run."""
    if arg is None:
        path = find_default_model(runtime)
        return (path.parent, [path]) if path else (None, [])
    p = Path(arg)
    if p.is_dir():
        return p, sorted(q for q in p.iterdir() if q.suffix in _suffixes(runtime)
                       and q.name not in LOCATORS + ROW_READERS)
    if p.is_file():
        if p.suffix not in _suffixes(runtime):
            raise UserError(f"--model {arg}: a {p.suffix or 'suffix-less'} file, which --runtime {runtime} "
                            f"does not run (it runs {' and '.join(_suffixes(runtime))} files)")
        return p.parent, [p]
    raise UserError(f"--model {arg}: no such file or folder")


def _suffixes(runtime: str | None) -> tuple:
    """The model files doctor tries: those --runtime reads, else every kind."""
    return RUNTIMES[runtime].suffixes if runtime else MODEL_SUFFIXES


def doctor(model: str | None = None, out=None, runtime: str | None = None) -> int:
    """Print the report; 0 when ready, 1 otherwise. `runtime`: try the models in it alone, and
    without `model` the shipped one it runs."""
    out = out or sys.stdout
    if runtime is not None and runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime}: expected one of {', '.join(RUNTIMES)}")

    def say(line: str = "") -> None:  # file names that are not UTF-8 show their bytes as \xff
        print(os.fsencode(line).decode("utf-8", "backslashreplace"), file=out)

    folder, models = _models(model, runtime)
    hints: list[str] = []  # what to install or do, printed when not ready
    _system(say)
    usable = _runtimes(say, hints)
    _camera(say, hints)
    _mqtt(say)
    unfit = _files(say, hints, folder) if folder is not None else []
    runs = _runs(say, hints, models, usable, folder if model else None, runtime)
    if not runs and model is None and runtime is None:
        _other_runtime(hints, usable)
    default = default_name(runtime)
    first = min(runs, key=lambda r: (r[0] != default, r[0])) if runs else None  # the default first
    by_name = {m.name: m for m in models}
    locator_ok = first is None or _locator(say, hints, by_name[first[0]], first[1])
    rows_ok = first is None or _rows(say, hints, by_name[first[0]], first[1])
    ready = bool(runs) and not unfit and locator_ok and rows_ok
    if ready:
        name, rt = first
        say(f"ready: {name} runs in {rt}" + (f" (and {len(runs) - 1} more)" if len(runs) > 1 else ""))
    else:
        why = (["no model runs in an installed runtime"] if not runs else []) + unfit + \
            (["the digit locator does not run"] if not locator_ok else []) + \
            (["the row reader does not run"] if not rows_ok else [])
        say("not ready: " + "; ".join(why))
        for h in dict.fromkeys(hints):
            say(f"  hint: {h}")
    return 0 if ready else 1


def _system(say) -> None:
    say(f"mnist-edge {__version__} doctor")
    say(f"  python    {platform.python_version()} ({platform.python_implementation()}, {sys.executable})")
    cpu = read_cpu()
    say(f"  platform  {platform.platform()} ({platform.machine()}){'  ' + cpu.board if cpu.board else ''}")
    say(f"  cpu       {cpu.core or '?'}")
    say(f"  int8      {int8_line(cpu)}")
    if emulated():
        say(f"  emulated  QEMU_CPU={emulated()}: qemu-user, so no timings are printed")
    say(f"  numpy     {_numpy_line()}")


def _runtimes(say, hints: list[str]) -> set[str]:
    """Each interpreter's version or why it does not import; the names of those that do."""
    say("runtimes")
    status = runtime_status()
    usable = {rt for rt, v in status.items() if not v.startswith("unavailable")}
    for rt, v in status.items():
        missing = v.startswith("unavailable (ModuleNotFoundError")
        abi = "" if missing else f"; {numpy_abi(RUNTIMES[rt].distribution)}"
        say(f"  {OK if rt in usable else BAD} {rt:<15} {v}{abi}")
    if "tflite-runtime" not in usable and ("numpy" in status["tflite-runtime"].lower()
                                           or "_ARRAY_API" in status["tflite-runtime"]):
        hints.append("tflite-runtime is built against numpy 1: pip install 'numpy<2' "
                     "(or use LiteRT: pip install 'mnist-edge[edge]')")
    return usable


def _camera(say, hints: list[str]) -> None:
    say("camera")
    for name, (ok, line) in (("cv2", _cv2_line()), ("picamera2", _picamera2_line())):
        say(f"  {OK if ok else BAD} {name:<15} {line}")
        if name == "cv2" and not ok:
            hints.append("camera and predict need OpenCV: pip install 'mnist-edge[camera]'")


def _mqtt(say) -> None:
    ok, line = _paho_line()
    say("publishing")
    say(f"  {OK if ok else BAD} {'paho-mqtt':<15} {line}")


def _files(say, hints: list[str], folder: Path) -> list[str]:
    """Each file's hash against the folder's manifest, and whether export validated it: why the
    folder is not fit to run ([] when it is)."""
    manifest = read_manifest(folder)
    partial = incomplete_export(folder)
    say(f"model files in {folder}" + (
        f" (incomplete export: {', '.join(partial)} but no {MANIFEST}; an interrupted export, or "
        "files copied without it: hashes not checked)" if partial
        else f" (no {MANIFEST}: model hashes not checked)" if manifest is None else ""))
    differs, failed, why = [], [], []
    for c in check_files(folder, manifest, read_locator_report(folder), read_rows_report(folder)):
        say(f"  {c.status} {c.name:<22} {c.detail}")
        if c.status == BAD:
            (failed if c.failed_validation else differs).append(c.name)
            if c.differs:
                why.append(c.differs)
    if set(differs) - set(LOCATORS) - set(ROW_READERS):
        hints.append(f"a model file differs from {folder / MANIFEST}: export again or copy it again")
    if set(differs) & set(LOCATORS):
        hints.append(f"a locator file differs from {folder / LOCATOR_REPORT}: train it again "
                     "(mnist-edge locator) or copy it again")
    if set(differs) & set(ROW_READERS):
        hints.append(f"a row-reader file differs from {folder / ROWS_REPORT}: train it again "
                     "(mnist-edge rows) or copy it again")
    if failed:
        hints.append(f"{', '.join(failed)} failed export's validation: export again (for int8, more "
                     "--calib-samples), or take the file out of the folder")
    return why + ([f"{', '.join(failed)} failed export's validation"] if failed else [])


def _runs(say, hints: list[str], models: list[Path], usable: set[str],
          given: Path | None = None, runtime: str | None = None) -> list[tuple[str, str]]:
    """Each model in each usable runtime that can take it (in `runtime` alone when given); the
    (file, runtime) pairs that ran. `given`: the folder --model named (None: the shipped model was
    looked for)."""
    runs = []
    say("models")
    if not models:
        default = default_name(runtime)
        where = (f"no classifier {' or '.join(_suffixes(runtime))} in {given}" if given else
                 " or ".join(str(d / default) for d in model_dirs()) + " not found")
        say(f"  {BAD} no model ({where})")
        hints.append("pass --model PATH (a file or a folder from `mnist-edge export`), or put the "
                     f"shipped {default} in ./models")
    for path in models:
        runtimes = (runtime,) if runtime else default_runtimes(path.suffix)
        tried = [rt for rt in runtimes if rt in usable]
        for rt in tried:
            ok, what = try_model(path, rt)
            say(f"  {OK if ok else BAD} {path.name:<22} {rt:<15} {what}")
            if ok:
                runs.append((path.name, rt))
        if not tried:
            say(f"  {BAD} {path.name:<22} no runtime for {path.suffix} here "
                f"({' or '.join(RUNTIMES[r].distribution for r in runtimes)})")
            extra = RUNTIMES[runtime].extra if runtime else extra_for(path.suffix)
            hints.append(f"to run {path.suffix} models: pip install 'mnist-edge[{extra}]'")
    return runs


def _other_runtime(hints: list[str], usable: set[str]) -> None:
    """The shipped model found no runtime here: a hint naming the --runtime that would run the one
    shipped for it (`edge.models.find_default_model`), as on a device with only onnxruntime."""
    tried = default_runtimes(Path(DEFAULT_MODEL).suffix)
    other = next((rt for rt in RUNTIMES if rt in usable and rt not in tried and find_default_model(rt)), None)
    if other:
        hints.append(f"or pass --runtime {other} (to doctor, predict and camera) to use the shipped "
                     f"{default_name(other)} with it")


def _locator(say, hints: list[str], model: Path, runtime: str) -> bool:
    """The locator camera and predict would use with this model, and whether it runs in the model's
    runtime; False when it is there but does not run."""
    say("digit locator")
    path = default_locator(model, runtime)
    if path is None:
        say(f"  {NA} none found: camera and predict find digits by segmentation (fewer on a desk)")
        return True
    ok, what = try_locator(path, runtime)
    say(f"  {OK if ok else BAD} {path.name:<22} {runtime:<15} {what}")
    if not ok:
        hints.append(f"{path} does not run here: copy it again, or pass --locator none to camera and "
                     "predict")
    return ok


def _rows(say, hints: list[str], model: Path, runtime: str) -> bool:
    """The row reader camera and predict would use with this model (`resolve_rows`), and whether it
    runs in the model's runtime; False when it is there but does not run."""
    say("row reader")
    path = resolve_rows(None, model, runtime)
    if path is None:
        say(f"  {NA} none found: camera and predict read each located digit's crop")
        return True
    try:
        from edge.rows import STRIP_HW, RowReader

        RowReader(path, runtime, flag="the shipped row reader").logits(np.zeros(STRIP_HW, np.uint8))
        ok, what = True, "runs"
    except Exception as e:
        ok, what = False, _failure(e)
    say(f"  {OK if ok else BAD} {path.name:<22} {runtime:<15} {what}")
    if not ok:
        hints.append(f"{path} does not run here: copy it again, or pass --rows none to camera and predict")
    return ok


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("mnist-edge doctor", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=str, default=None,
                   help=f"a model file or a folder of them (default: the shipped models/{DEFAULT_MODEL}, "
                        "or the .onnx with --runtime onnxruntime, as predict and camera take)")
    p.add_argument("--runtime", type=str, default=None,
                   help=f"{', '.join(RUNTIMES)}: try the models in this one alone (default: each "
                        "installed one predict and camera would pick for the file)")
    return p


def main(args: argparse.Namespace) -> int:
    return doctor(args.model, runtime=args.runtime)
