"""A skipped test is not a pass: without what a selected test needs, pytest stops in one line."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def pytest_run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_missing_mnist_stops_the_run_in_one_line(tmp_path):
    missing = tmp_path / "nowhere.npz"
    r = pytest_run("tests/test_data.py", env={"MNIST_EDGE_DATA": str(missing)})
    assert r.returncode == 4, r.stdout[-2000:]
    said = [ln for ln in r.stdout.splitlines() if "MNIST not found" in ln]
    assert len(said) == 1 and f"MNIST_EDGE_DATA={missing} does not exist" in said[0], r.stdout
    assert "passed" not in r.stdout and "skipped" not in r.stdout


def test_tests_that_need_no_mnist_still_run_without_it(tmp_path):
    r = pytest_run("tests/test_data.py", "-k", "env_var_is_used",
                   env={"MNIST_EDGE_DATA": str(tmp_path / "nowhere.npz")})
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-2000:]


def test_the_emulated_pi_without_its_tools_stops_the_run_in_one_line():
    """`make test-pi` on a machine without qemu/mmdebstrap (or not as root): one line, no test run."""
    r = pytest_run("-m", "pi", "tests/test_pi_emulated.py", env={"PATH": "/nonexistent"})
    assert r.returncode == 4, r.stdout[-2000:]
    said = [ln for ln in r.stdout.splitlines() if "the emulated Pi needs" in ln]
    assert len(said) == 1, r.stdout
    assert "passed" not in r.stdout and "failed" not in r.stdout and "skipped" not in r.stdout
    r = pytest_run("--co", "tests/test_pi_emulated.py", env={"PATH": "/nonexistent"})  # make test's
    assert r.returncode == 0 and "deselected" in r.stdout and "emulated Pi needs" not in r.stdout, r.stdout
