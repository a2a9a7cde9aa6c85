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
