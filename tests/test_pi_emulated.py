"""The device commands on Raspberry Pi OS (64-bit), emulated: tools/pi_emulated.py, run for real.

Debian arm64 (what Pi OS 64-bit is), both releases a Pi may run: bookworm (Python 3.11) and trixie
(Pi OS since late 2025, Python 3.13), each built with mmdebstrap once and cached outside the
checkout ($MNIST_EDGE_CACHE or ~/.cache/mnist-edge/pi-rootfs, with its device venvs inside, remade
when their requirements in pyproject.toml change; trixie has no tflite-runtime venv: neither it nor
numpy 1 has a wheel for Python 3.13); every run reinstalls the project from this checkout. Inside
it, under qemu-user, a Pi 4 (Cortex-A72) and a Pi 5 (Cortex-A76), each with its own /proc/cpuinfo,
run `mnist-edge doctor`, `predict` and `camera`; every digit and reading must equal this machine's,
and every box within two pixels (the locator's int8 box sizes) or, for a row read another way, over
the same place (tools/pi_emulated.compare).

Run by `make test-pi` (`-m pi`), apart from `make test`: its first run on a machine builds the
rootfs and venvs (10-20 minutes a release on 2 cores), which would take `make test` past its 15
minutes; CI runs both. `--lean`, not the whole `make pi` (every runtime x model x CPU, both camera
sources each), to keep each run to a few minutes: every process start costs seconds under emulation.
Kept: both CPUs (the A72 has no dot product, the A76 has it, so XNNPACK and onnxruntime run
different int8 kernels), every runtime the release has (all three on bookworm; trixie has no
tflite-runtime) with the int8 models (what the device ships), the fp32 model in LiteRT, 30 digits
and 4 frames, and the camera over the folder and the video with the int8 models in LiteRT and
(bookworm) tflite-runtime (the camera adds the sources; tflite-runtime's venv has OpenCV 4, the
other OpenCV 5). Cut, left to `make pi`: the fp32 models in onnxruntime and tflite-runtime, the
camera with fp32 models, and with onnxruntime (the same venv and OpenCV as LiteRT's camera runs; its
interpreter is covered by predict).

Needs root (mount, chroot), qemu-user-static + binfmt-support + mmdebstrap (.ci/run installs them)
and Debian's mirror and PyPI the first time. Without root or those tools, the run stops before any
test in one line saying which (tests/conftest.py; it runs only when asked for), so CI can never pass
without running it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tools.pi_emulated import same_place

pytestmark = pytest.mark.slow
# The tests that need root, qemu and a rootfs carry `pi` (`make test-pi`); the rest run in `make test`.

SCRIPT = REPO / "tools" / "pi_emulated.py"
DIGITS, FRAMES = 30, 4


def missing(why: str) -> None:
    pytest.fail(f"Pi emulation cannot run: {why}", pytrace=False)


def script(*args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


SUITES = {"bookworm": "3.11", "trixie": "3.13"}  # Pi OS 64-bit's bases (trixie since late 2025): Python


@pytest.fixture(scope="module", params=list(SUITES))
def pi(request, tmp_path_factory, mnist_file) -> dict:
    """The report of the lean runs on one Pi OS base: {cpu: {"doctor": {venv: ...}, "runs": {...}}}."""
    if os.geteuid() != 0:
        missing("needs root to mount and chroot")
    if not shutil.which("qemu-aarch64-static"):
        missing("qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support "
                "mmdebstrap arch-test)")
    path = tmp_path_factory.mktemp("pi") / "report.json"
    # --lean: see the module docstring for what is cut and why
    r = script("--suite", request.param, "--lean", "--digits", str(DIGITS), "--frames", str(FRAMES),
               "--json", str(path), "--data", str(mnist_file))
    if r.returncode == 2:  # a prerequisite is missing: one line saying which
        missing(r.stderr.strip())
    assert path.is_file(), r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(path.read_text())
    assert report["suite"] == request.param
    return {**report["cpus"], "_suite": request.param, "_stdout": r.stdout, "_returncode": r.returncode}


@pytest.mark.pi
def test_every_run_reads_what_x86_reads(pi, mnist):
    for cpu in ("pi4", "pi5"):
        runs = pi[cpu]["runs"]
        tflite = ("litert", "tflite-runtime") if pi["_suite"] == "bookworm" else ("litert",)  # no 3.13 wheel
        want = {f"{rt} model_int8.tflite {c}" for rt in tflite
                for c in ("predict", "camera-folder", "camera-video")} | \
            {"onnxruntime model_int8.onnx predict", "litert model_fp32.tflite predict"}
        assert set(runs) == want, sorted(runs)
        for name, run in runs.items():
            arm, x86 = run["arm64"], run["x86"]
            assert run["same"], f"{cpu} {name}: {run['why']}"
            assert len(arm) == len(x86) == (DIGITS + FRAMES if name.endswith("predict") else FRAMES)
            for a, b in zip(arm, x86, strict=True):  # checked here too, not only by the script
                assert a["reading"] == b["reading"], (cpu, name, a, b)
                assert [d["digit"] for d in a["digits"]] == [d["digit"] for d in b["digits"]], (cpu, name)
                for da, db in zip(a["digits"], b["digits"], strict=True):
                    if np.abs(np.subtract(da["box"], db["box"])).max() <= 2:
                        assert abs(da["confidence"] - db["confidence"]) <= 4 / 256 + 1e-4, (cpu, name, da, db)
                    else:  # a row read whole on one, from its crops on the other (pi_emulated.compare)
                        assert same_place(da["box"], db["box"]), (cpu, name, da, db)
            if name.endswith("predict"):  # and what is read is right: MNIST's own labels
                labels = [str(y) for y in mnist.y_test[:DIGITS]]
                right = sum(r["reading"] == y for r, y in zip(arm[:DIGITS], labels, strict=True))
                assert right >= DIGITS - 1, (cpu, name, right)
    assert pi["_returncode"] == 0, pi["_stdout"]
    assert not re.search(r"\d ?(ms|µs)\b", pi["_stdout"])  # no timings: they would be the emulator's


@pytest.mark.pi
def test_doctor_knows_each_pi(pi):
    expect = {"pi4": ("Raspberry Pi 4 Model B", "Cortex-A72 (Armv8.0-A)", "cortex-a72"),
              "pi5": ("Raspberry Pi 5 Model B", "Cortex-A76 (Armv8.2-A)", "cortex-a76")}
    for cpu, (board, core, qemu) in expect.items():
        for venv, d in pi[cpu]["doctor"].items():
            out = d["stdout"]
            assert d["returncode"] == 0, out
            assert "(aarch64)" in out and board in out and f"cpu       {core}" in out, out
            assert f"python    {SUITES[pi['_suite']]}." in out, out  # the release's own Python
            assert f"emulated  QEMU_CPU={qemu}" in out and "ms per digit" not in out, out
            assert "HWCAP disagrees" not in out, out  # the fake cpuinfo matches the emulated CPU
            for name in ("model_int8.tflite", "locator_int8.tflite", "locator_int8.onnx", "rows_int8.tflite",
                         "rows_int8.onnx"):  # every file
                assert re.search(rf"✓ {re.escape(name)} +sha256 \w+… matches", out), out  # vouched for
            if cpu == "pi5":
                assert "int8      asimddp (dot product, SDOT/UDOT)" in out, out
            else:
                assert "int8      none of asimddp, i8mm" in out, out
            if venv == "numpy2":
                assert "numpy     2." in out, out
                assert "litert          2." in out and "onnxruntime     1." in out, out
                assert out.count("built for numpy 2") == 2, out
            else:
                assert "numpy     1." in out, out
                assert "✓ tflite-runtime  2.14.0; built for numpy 1 (needs numpy<2)" in out, out
        assert set(pi[cpu]["doctor"]) == ({"numpy1", "numpy2"} if pi["_suite"] == "bookworm" else {"numpy2"})


@pytest.mark.pi
@pytest.mark.parametrize("args, says", [
    (["--offline"], "no rootfs in "),
    (["--mirror", "http://127.0.0.1:9/debian"], "cannot reach the Debian mirror (http://127.0.0.1:9/debian"),
])
def test_missing_rootfs_or_network_is_one_line(tmp_path, args, says):
    if os.geteuid() != 0:
        missing("needs root to mount and chroot")
    r = script("--cache", str(tmp_path), *args, timeout=120)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts  # nothing left mounted


def test_a_runtime_the_release_cannot_install_is_one_line():
    r = script("--suite", "trixie", "--runtimes", "litert,tflite-runtime", timeout=120)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--runtimes tflite-runtime: not on trixie" in lines[0], r.stderr
