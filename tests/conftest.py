"""Shared fixtures: where MNIST is, and how to run the real `mnist-edge` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist.npz"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, for the live page's tests (tests/test_web.py)


def mnist_path() -> Path | None:
    p = Path(os.environ.get("MNIST_EDGE_DATA") or SHARED_MNIST)
    return p if p.exists() else None


def mnist_missing() -> str:
    where = os.environ.get("MNIST_EDGE_DATA")
    if where:
        return f"MNIST not found: MNIST_EDGE_DATA={where} does not exist"
    return f"MNIST not found: set MNIST_EDGE_DATA to a Keras-layout mnist.npz (or put one at {SHARED_MNIST})"


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(config, items) -> None:
    """A skipped test is not a pass: when a selected test needs something this machine lacks, stop
    before any test runs, with one line saying what is missing."""
    missing = []
    if any(it.get_closest_marker("pi") for it in items):  # the emulated Pi (`make test-pi`)
        if os.geteuid() != 0:
            missing.append("the emulated Pi needs root (it mounts and chroots): run make test-pi as root")
        elif not all(shutil.which(t) for t in ("qemu-aarch64-static", "update-binfmts", "mmdebstrap",
                                                "arch-test")):
            missing.append("the emulated Pi needs qemu-user-static, binfmt-support, mmdebstrap and arch-test "
                           "(apt-get install qemu-user-static binfmt-support mmdebstrap arch-test; .ci/run "
                           "does)")
    if mnist_path() is None and any("mnist_file" in getattr(it, "fixturenames", ()) for it in items):
        missing.append(mnist_missing())
    if not CHROMIUM.is_file() and any(it.path.name == "test_web.py" for it in items):
        missing.append(f"{CHROMIUM} not found: the live page is tested in it (apt-get install -y chromium)")
    if missing:
        pytest.exit("; ".join(missing), returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def mnist_file() -> Path:
    p = mnist_path()
    if p is None:
        pytest.fail(mnist_missing(), pytrace=False)
    return p


@pytest.fixture(scope="session")
def mnist(mnist_file):
    from train.data import load_mnist

    return load_mnist(mnist_file)


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run the installed `mnist-edge` script; returns the CompletedProcess (text mode)."""
    exe = Path(sys.executable).parent / "mnist-edge"
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, mnist_file):
    """A model trained in seconds (--quick); good enough to exercise every stage."""
    pytest.importorskip("tensorflow")
    from train.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny")
    train(TrainConfig(quick=True, data=str(mnist_file), out=str(out)))
    return out / "model.keras"


@pytest.fixture(scope="session")
def exported(tiny_model, mnist_file):
    """(folder, CompletedProcess) of `mnist-edge export --int8` on the tiny model: all four files."""
    out = tiny_model.parent
    r = cli("export", "--int8", "--model", str(tiny_model), "--out", str(out),
            "--data", str(mnist_file), "--calib-samples", "200", "--max-drop", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out, r
