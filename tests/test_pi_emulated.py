"""The device commands on Raspberry Pi OS (64-bit), emulated: tools/pi_emulated.py, run for real.

Debian bookworm arm64 (what Pi OS 64-bit is) is built with mmdebstrap once and cached outside the
checkout ($MNIST_EDGE_CACHE or ~/.cache/mnist-edge/pi-rootfs, with its two device venvs inside,
remade when their requirements in pyproject.toml change); every run reinstalls the project from
this checkout. Inside it, under qemu-user, a Pi 4 (Cortex-A72) and a Pi 5 (Cortex-A76), each with
its own /proc/cpuinfo, run `mnist-edge doctor`, `predict` and `camera`; every digit and reading
must equal this machine's, and every box within two pixels (the locator's int8 box sizes).

`--lean`, not the whole `make pi` (every runtime x model x CPU, both camera sources each), to keep
`make test` under its 15 minutes: every process start costs seconds under emulation. Kept: both
CPUs (the A72 has no dot product, the A76 has it, so XNNPACK and onnxruntime run different int8
kernels), all three runtimes with the int8 models (what the device ships), the fp32 model in
LiteRT, 30 digits and 4 frames, and the camera over the folder and the video with the int8 models
in LiteRT and tflite-runtime (the camera adds the sources; tflite-runtime's venv has OpenCV 4, the
other OpenCV 5). Cut, left to `make pi`: the fp32 models in onnxruntime and tflite-runtime, the
camera with fp32 models, and with onnxruntime (the same venv and OpenCV as LiteRT's camera runs;
its interpreter is covered by predict).

Needs root (mount, chroot), qemu-user-static + binfmt-support + mmdebstrap (.ci/run installs them)
and Debian's mirror and PyPI the first time. Without them it skips locally; with CI=true it fails
in one line, so CI can never pass without running it.
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

pytestmark = pytest.mark.slow

SCRIPT = REPO / "tools" / "pi_emulated.py"
DIGITS, FRAMES = 30, 4


def missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Pi emulation cannot run: {why}", pytrace=False)
    pytest.skip(why)


def script(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def pi(tmp_path_factory, mnist_file) -> dict:
    """The report of the lean runs: {cpu: {"doctor": {venv: ...}, "runs": {...}}}."""
    if os.geteuid() != 0:
        missing("needs root to mount and chroot")
    if not shutil.which("qemu-aarch64-static"):
        missing("qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support "
                "mmdebstrap arch-test)")
    path = tmp_path_factory.mktemp("pi") / "report.json"
    # --lean: see the module docstring for what is cut and why
    r = script("--lean", "--digits", str(DIGITS), "--frames", str(FRAMES), "--json", str(path),
               "--data", str(mnist_file))
    if r.returncode == 2:  # a prerequisite is missing: one line saying which
        missing(r.stderr.strip())
    assert path.is_file(), r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(path.read_text())
    return {**report["cpus"], "_stdout": r.stdout, "_returncode": r.returncode}


def test_every_run_reads_what_x86_reads(pi, mnist):
    for cpu in ("pi4", "pi5"):
        runs = pi[cpu]["runs"]
        want = {f"{rt} model_int8.tflite {c}" for rt in ("litert", "tflite-runtime")
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
                    assert abs(da["confidence"] - db["confidence"]) <= 4 / 256 + 1e-4, (cpu, name, da, db)
                    assert np.abs(np.subtract(da["box"], db["box"])).max() <= 2, (cpu, name, da, db)
            if name.endswith("predict"):  # and what is read is right: MNIST's own labels
                labels = [str(y) for y in mnist.y_test[:DIGITS]]
                right = sum(r["reading"] == y for r, y in zip(arm[:DIGITS], labels, strict=True))
                assert right >= DIGITS - 1, (cpu, name, right)
    assert pi["_returncode"] == 0, pi["_stdout"]
    assert not re.search(r"\d ?(ms|µs)\b", pi["_stdout"])  # no timings: they would be the emulator's


def test_doctor_knows_each_pi(pi):
    expect = {"pi4": ("Raspberry Pi 4 Model B", "Cortex-A72 (Armv8.0-A)", "cortex-a72"),
              "pi5": ("Raspberry Pi 5 Model B", "Cortex-A76 (Armv8.2-A)", "cortex-a76")}
    for cpu, (board, core, qemu) in expect.items():
        for venv, d in pi[cpu]["doctor"].items():
            out = d["stdout"]
            assert d["returncode"] == 0, out
            assert "(aarch64)" in out and board in out and f"cpu       {core}" in out, out
            assert f"emulated  QEMU_CPU={qemu}" in out and "ms per digit" not in out, out
            assert "HWCAP disagrees" not in out, out  # the fake cpuinfo matches the emulated CPU
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
        assert set(pi[cpu]["doctor"]) == {"numpy1", "numpy2"}


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
