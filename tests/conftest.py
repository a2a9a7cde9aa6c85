"""Shared fixtures: where MNIST is, and how to run the real `mnist-edge` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist.npz"


def mnist_path() -> Path | None:
    p = Path(os.environ.get("MNIST_EDGE_DATA") or SHARED_MNIST)
    return p if p.exists() else None


@pytest.fixture(scope="session")
def mnist_file() -> Path:
    p = mnist_path()
    if p is None:
        pytest.skip("MNIST not found: set MNIST_EDGE_DATA")
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
