"""The device commands on Raspberry Pi OS (64-bit) under emulation, compared with this x86 machine.

    make pi                                                    # Pi 4 and Pi 5, every runtime x model
    sudo .venv/bin/python tools/pi_emulated.py --cpus pi5 --runtimes litert --models int8
    sudo .venv/bin/python tools/pi_emulated.py --suite trixie  # today's Pi OS base (Python 3.13)
    sudo .venv/bin/python tools/pi_emulated.py --json pi.json  # everything seen, for tests

Raspberry Pi OS 64-bit is Debian arm64: bookworm (Python 3.11, glibc 2.36) until late 2025, trixie
(Python 3.13, glibc 2.41) since (`--suite`). This builds that root filesystem with mmdebstrap (once;
cached outside the checkout, in $MNIST_EDGE_CACHE or ~/.cache/mnist-edge, keyed by what defines it),
runs it through qemu-user (binfmt_misc) and, inside it, installs the project from this checkout with
only the device extras, into two venvs made once per set of requirements: LiteRT + onnxruntime on numpy
2 (`.[edge,edge-onnx,camera]`) and tflite-runtime 2.14 on numpy 1 (`.[edge-tflite,camera]`; bookworm
only: neither has a wheel for Python 3.13). Then, for a Pi 4 (QEMU_CPU=cortex-a72) and a Pi 5
(cortex-a76), each with a matching /proc/cpuinfo bind-mounted (the host's x86 one makes the cpuinfo
library inside LiteRT and onnxruntime crash; qemu's default CPU makes XNNPACK compute wrong numbers):
`mnist-edge doctor`, `predict` over MNIST test digits and synthetic frames, and `camera` over a folder
of those frames and a video of them, with the shipped int8 and fp32 models (and the shipped digit
locator, as the commands use by default). Every digit and reading must equal what this machine's LiteRT
(.tflite) or onnxruntime (.onnx) gives; confidences may differ by a few int8 output steps (1/256), and
boxes by BOX_PX pixels (the locator's box sizes are int8 outputs too) or, for a row read another
way, lie over the same place (`compare`). Exit 0 when all agree, 1 when
not, 2 when something is missing (one line: what, and how to get it).
Everything mounted is unmounted on the way out, failures included.

Timings under emulation mean nothing about a Pi: none are printed or kept.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.contract import (  # noqa: E402
    DEFAULT_RUNTIMES,
    LOCATOR_REPORT,
    MANIFEST,
    MODEL_SUFFIXES,
    ROWS_REPORT,
    model_file,
)
from edge.errors import UserError  # noqa: E402

HERE = Path(__file__).resolve().parent / "pi"
ARCH = "arm64"  # Raspberry Pi OS 64-bit's
SUITES = {  # Raspberry Pi OS 64-bit's Debian base -> the venvs a device user can make on it
    "bookworm": ("numpy2", "numpy1"),  # Python 3.11: every runtime
    "trixie": ("numpy2",),  # Python 3.13: tflite-runtime 2.14 and numpy 1 have no wheel for it
}
ROOTFS_PACKAGES = ("python3", "python3-venv", "python3-pip")
PACKAGES = ("edge", "train", "export", "benchmarks")  # pyproject's [tool.setuptools] packages
CPUS = {"pi4": "cortex-a72", "pi5": "cortex-a76"}  # --cpus name -> QEMU_CPU; tools/pi/cpuinfo-<name>
VENVS = {  # venv inside the rootfs -> the extras a device user installs
    "numpy2": "edge,edge-onnx,camera",
    "numpy1": "edge-tflite,camera",
}
RUNTIME_VENV = {"litert": "numpy2", "onnxruntime": "numpy2", "tflite-runtime": "numpy1"}
REFERENCE = {suffix: rts[0] for suffix, rts in DEFAULT_RUNTIMES.items()}  # what this machine compares against
INSIDE = Path("/opt/mnist-edge")  # in the rootfs: venvs/ (cached) and run/ (made afresh each run)
BINFMT = Path("/proc/sys/fs/binfmt_misc")
APT_HINT = "apt-get install qemu-user-static binfmt-support mmdebstrap arch-test"


@dataclass
class PiConfig:
    suite: str = "trixie"     # the Debian release under Raspberry Pi OS: one of SUITES (today's image's)
    cpus: list[str] = field(default_factory=lambda: list(CPUS))  # which Pi CPU models to emulate
    runtimes: list[str] = field(default_factory=list)  # interpreters to run (none given: every one
    #                                                    the suite's venvs hold)
    models: list[str] = field(default_factory=lambda: ["int8", "fp32"])  # models/model_<m>.{tflite,onnx}
    digits: int = 40          # MNIST test digits read one by one (the first N of the test set)
    frames: int = 6           # synthetic desk frames of 1-4 digits (folder, video, predict)
    camera: str = "all"       # camera runs: "all" combinations, "int8" models only, or "none"
    lean: bool = False        # the CI set: fp32 in LiteRT only, camera with int8 in LiteRT and
    #                           tflite-runtime (bookworm; trixie has none)
    cache: str = ""           # rootfs cache (default $MNIST_EDGE_CACHE or ~/.cache/mnist-edge)
    mirror: str = ""          # Debian mirror (default: the one in /etc/apt/sources.list.d/)
    offline: bool = False     # never build: use only the cached rootfs and venvs
    steps: int = 4            # confidences may differ by this many int8 output steps (1/256)
    json: str = ""            # write everything seen (outputs of both machines, doctor) here
    data: str = ""            # MNIST (as `train --data`; default $MNIST_EDGE_DATA, then Keras' cache)


def log(msg: str) -> None:
    print(f"pi-emulated: {msg}", file=sys.stderr, flush=True)


def cache_dir(cfg: PiConfig) -> Path:
    return Path(cfg.cache or os.environ.get("MNIST_EDGE_CACHE") or Path.home() / ".cache" / "mnist-edge")


def host_mirror(suite: str) -> str:
    """The Debian archive the host's apt already uses (deb822 .sources or one-line .list), for any of
    SUITES: one archive serves them all."""
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + ["/etc/apt/sources.list"]
    for name in files:
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        if name.endswith(".sources"):
            for stanza in text.split("\n\n"):
                f = {k.strip(): v.split() for k, _, v in
                     (ln.partition(":") for ln in stanza.splitlines() if ln and not ln.startswith("#"))}
                if "deb" in f.get("Types", []) and set(SUITES) & set(f.get("Suites", [])) and f.get("URIs"):
                    return f["URIs"][0]
        else:
            for ln in text.splitlines():
                words = [w for w in ln.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and words[2] in SUITES:
                    return words[1]
    raise UserError(f"no Debian mirror (for {suite}) in /etc/apt/sources.list.d/ or /etc/apt/sources.list: "
                    "pass --mirror URL")


def reachable(url: str, what: str, hint: str) -> None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20):
            pass
    except Exception as e:
        raise UserError(f"cannot reach {what} ({url}: {getattr(e, 'reason', e)}); {hint}") from None


def ensure_binfmt() -> None:
    """qemu-aarch64 registered with the F flag (the kernel keeps the interpreter open, so the chroot
    needs no copy of it); mounts binfmt_misc and enables the handler when the packages are there."""
    handler = BINFMT / "qemu-aarch64"
    if not handler.exists():
        if not (BINFMT / "status").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True)
        if shutil.which("update-binfmts"):
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    try:
        text = handler.read_text()
    except OSError:
        raise UserError(f"no qemu-aarch64 binfmt handler ({handler}): {APT_HINT}") from None
    if not text.startswith("enabled"):
        raise UserError(f"{handler} is disabled: update-binfmts --enable qemu-aarch64")
    flags = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("flags:")), "")
    if "F" not in flags:
        raise UserError(f"{handler} lacks the F flag (flags: {flags or 'none'}): install Debian's "
                        "qemu-user-static, whose handler has it")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    root = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        p = line.split()[4].replace("\\040", " ")
        if p == root or p.startswith(root + "/"):
            points.append(p)
    return sorted(points, key=len, reverse=True)


def unmount_all(path: Path) -> None:
    for p in mounts_under(path):
        subprocess.run(["umount", "--lazy", p], capture_output=True)
    left = mounts_under(path)
    if left:
        raise RuntimeError(f"still mounted: {', '.join(left)}")


def guard(lock: Path, root: Path) -> None:
    """Unmount whatever is left under `root` once this process lets go of the lock, however it ends
    (SIGKILL included): a `flock` waiting in its own session, which outlives us."""
    sh = ("awk -v r=\"$1\" '$5 == r || index($5, r \"/\") == 1 {print $5}' /proc/self/mountinfo "
          "| sort -r | while read -r m; do umount --lazy \"$m\"; done")
    subprocess.Popen(["flock", str(lock), "sh", "-c", sh, "-", str(root.resolve())], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remove_tree(path: Path) -> None:
    """rm -r that never follows a leftover bind mount into the host's /dev or /proc."""
    unmount_all(path)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def rootfs_key(suite: str) -> str:
    return hashlib.sha256(repr((suite, ARCH, "minbase", ROOTFS_PACKAGES)).encode()).hexdigest()[:12]


def ensure_rootfs(cfg: PiConfig, base: Path) -> Path:
    suite = cfg.suite
    root = base / f"{suite}-{ARCH}-{rootfs_key(suite)}"
    if (root / ".ready").is_file():
        return root
    if cfg.offline:
        raise UserError(f"no rootfs in {root}: run without --offline once to build it (needs mmdebstrap "
                        "and the Debian mirror)")
    if not shutil.which("mmdebstrap"):
        raise UserError(f"no rootfs in {root} and mmdebstrap is not installed: {APT_HINT}")
    mirror = cfg.mirror or host_mirror(suite)
    reachable(f"{mirror.rstrip('/')}/dists/{suite}/Release", "the Debian mirror",
              "the rootfs is built from it once")
    for old in base.glob(f"{suite}-{ARCH}-*"):  # other keys, and a build that was interrupted
        remove_tree(old)
    partial = root.with_name(root.name + ".partial")
    log(f"building Debian {suite} {ARCH} in {root} from {mirror} (once; minutes)")
    r = subprocess.run(["mmdebstrap", f"--arch={ARCH}", "--variant=minbase", "--quiet",
                        f"--include={','.join(ROOTFS_PACKAGES)}", suite, str(partial), mirror],
                       capture_output=True, text=True)
    unmount_all(partial)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise UserError(f"mmdebstrap failed ({tail}); mirror {mirror}")
    (partial / ".ready").write_text(json.dumps({"suite": suite, "arch": ARCH, "mirror": mirror,
                                                "packages": ROOTFS_PACKAGES}) + "\n")
    partial.rename(root)
    return root


@contextmanager
def mounted(root: Path):
    """/proc, /sys and /dev in the rootfs, and the host's CA bundle, DNS and a pip.conf; all undone."""
    try:
        for args in (["-t", "proc", "proc", "proc"], ["-t", "sysfs", "sysfs", "sys"],
                     ["--bind", "/dev", "dev"]):
            target = root / args[-1]
            subprocess.run(["mount", *args[:-1], str(target)], check=True, capture_output=True)
        certs = root / "etc/ssl/certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", certs / "ca-certificates.crt")
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        yield
    finally:
        unmount_all(root)


@contextmanager
def as_cpu(root: Path, cpu: str):
    """A Pi's /proc/cpuinfo over the emulated one (the rootfs' /proc must be mounted)."""
    target = root / "proc/cpuinfo"
    subprocess.run(["mount", "--bind", str(HERE / f"cpuinfo-{cpu}"), str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(target)], capture_output=True)


def chroot(root: Path, cmd: list[str], cpu: str | None = None, cwd: str = "/",
           check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run inside the rootfs with a clean environment (the host's pip settings are x86's)."""
    env = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8", "PIP_NO_INPUT=1",
           "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1", "TF_CPP_MIN_LOG_LEVEL=3",
           *([f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"] if os.environ.get("PIP_INDEX_URL") else []),
           f"QEMU_CPU={CPUS[cpu] if cpu else CPUS['pi4']}"]
    full = ["chroot", str(root), "/usr/bin/env", "-i", *env, "/bin/sh", "-c",
            'cd "$1" && shift && exec "$@"', "-", cwd, *cmd]
    r = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"in the arm64 rootfs, {' '.join(cmd)} exited {r.returncode}:\n"
                           f"{r.stdout[-1500:]}{r.stderr[-3000:]}")
    return r


def build_wheel(tmp: Path) -> Path:
    """The checkout's package as a wheel (pure Python, so the x86 build installs on arm64)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True)
    return next((tmp / "dist").glob("*.whl"))


def venv_key(name: str) -> str:
    """What a venv is made from: the project's dependencies and the extras it installs."""
    raw = (REPO / "pyproject.toml").read_bytes()
    try:
        import tomllib

        project = tomllib.loads(raw.decode())["project"]
        extras = project.get("optional-dependencies", {})
        raw = repr((project.get("dependencies"), {e: extras.get(e) for e in VENVS[name].split(",")}))
    except (ImportError, KeyError):  # Python 3.10: the whole file
        raw = repr(raw)
    return hashlib.sha256(f"{raw} {VENVS[name]}".encode()).hexdigest()[:12]


def ensure_venvs(cfg: PiConfig, root: Path, wheel_in: str) -> dict[str, str]:
    """{name: venv path inside}: made once per venv_key, then only the project reinstalled."""
    wanted = sorted({RUNTIME_VENV[r] for r in cfg.runtimes})
    out = {}
    for name in wanted:
        venv = INSIDE / "venvs" / f"{name}-{venv_key(name)}"
        host = root / venv.relative_to("/")
        if not (host / ".ready").is_file():
            if cfg.offline:
                raise UserError(f"no {name} venv in {host}: run without --offline to make it")
            reachable(os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/pip/", "PyPI",
                      "the device venvs are installed from it once")
            for old in host.parent.glob(f"{name}-*"):
                shutil.rmtree(old)
            log(f"making the {name} venv (pip install '.[{VENVS[name]}]') inside the rootfs (once; minutes)")
            chroot(root, ["python3", "-m", "venv", str(venv)])
            chroot(root, [f"{venv}/bin/pip", "install", "--quiet", "--only-binary=:all:",
                          f"{wheel_in}[{VENVS[name]}]"])
            (host / ".ready").write_text(VENVS[name] + "\n")
        chroot(root, [f"{venv}/bin/pip", "install", "--quiet", "--no-deps", "--force-reinstall", wheel_in])
        out[name] = str(venv)
    return out


def make_inputs(cfg: PiConfig, run: Path) -> None:
    """run/models (the shipped ones, with the manifest, locator.json and rows.json that vouch for them),
    run/digits/*.png, run/frames/*.png and run/clip.mkv."""
    import cv2
    import numpy as np

    from benchmarks.synthetic import make_frame
    from train.data import load_mnist

    (run / "models").mkdir(parents=True)
    for p in (REPO / "models").iterdir():
        if p.suffix in MODEL_SUFFIXES or p.name in (MANIFEST, LOCATOR_REPORT, ROWS_REPORT):  # doctor checks
            shutil.copy(p, run / "models" / p.name)
    mnist = load_mnist(cfg.data or None, allow_download=False)
    (run / "digits").mkdir()
    for i in range(cfg.digits):
        cv2.imwrite(str(run / "digits" / f"{i:03d}.png"), mnist.x_test[i])
    (run / "frames").mkdir()
    rng = np.random.default_rng(2026)
    frames = []
    for i in range(cfg.frames):
        pick = rng.choice(len(mnist.x_test), size=1 + i % 4, replace=False)
        frame, _ = make_frame(list(mnist.x_test[pick]), rng)
        cv2.imwrite(str(run / "frames" / f"{i:03d}.png"), frame)
        frames.append(frame)
    h, w = frames[0].shape[:2]
    # Lossless (FFV1), so both machines decode the same pixels and only the runtime is compared.
    out = cv2.VideoWriter(str(run / "clip.mkv"), cv2.VideoWriter_fourcc(*"FFV1"), 5, (w, h))
    for f in frames:
        out.write(f)
    out.release()


def _runs(cfg: PiConfig) -> list[tuple[str, str]]:
    """(runtime, model file name) pairs to compare."""
    out = []
    for rt in cfg.runtimes:
        fmt = "onnx" if rt == "onnxruntime" else "tflite"
        out += [(rt, model_file(m, fmt)) for m in cfg.models
                if not (cfg.lean and m == "fp32" and rt != "litert")]
    return out


def commands(cfg: PiConfig, run: str, rt: str, model: str) -> dict[str, list[str]]:
    """What a device user runs: predict over digits and frames; camera over the folder and the clip."""
    common = ["--runtime", rt, "--model", f"{run}/models/{model}"]
    digits = [f"{run}/digits/{i:03d}.png" for i in range(cfg.digits)]
    frames = [f"{run}/frames/{i:03d}.png" for i in range(cfg.frames)]
    out = {"predict": ["predict", "--json", *common, *digits, *frames]}
    camera = "int8" if cfg.lean and cfg.camera == "all" else cfg.camera
    if cfg.lean and rt == "onnxruntime":  # same venv and OpenCV as LiteRT: predict covers it
        camera = "none"
    if camera == "all" or (camera == "int8" and "int8" in model):
        out["camera-folder"] = ["camera", "--source", f"{run}/frames", *common]
        out["camera-video"] = ["camera", "--source", f"{run}/clip.mkv", *common]
    return out


KEEP = ("file", "reading", "digits", "stable", "frame")  # what is compared (never "ms" or "t")
BOX_PX = 2  # boxes may differ by this many pixels: the digit locator's box sizes are int8 outputs,
#   which Arm's kernels round a step apart from x86's now and then (seen: 2 px), as confidences


def parse(stdout: str, run: str) -> list[dict]:
    rows = [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]
    for r in rows:
        if "file" in r:
            r["file"] = Path(r["file"]).name
    return [{k: r[k] for k in KEEP if k in r} for r in rows]


def same_place(a: list, b: list) -> bool:
    """Two boxes (x, y, w, h) over the same digit: intersection over union 0.5 or more."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return union > 0 and ix * iy / union >= 0.5


def compare(arm: list[dict], x86: list[dict], steps: int) -> tuple[bool, float, str]:
    """(same, largest confidence difference in output steps, first difference). A digit whose boxes
    differ by more than BOX_PX but lie over the same place was read the other way on one machine (a
    row its reader is unsure of near edge.reader.ROW_SURE, read whole on one and from its crops on the
    other: the located box or the ink's, another confidence); its digit must still agree."""
    if len(arm) != len(x86):
        return False, 0.0, f"{len(arm)} results, x86 has {len(x86)}"
    def shape(r: dict):  # everything but the confidences and boxes
        return {**r, "digits": [d["digit"] for d in r.get("digits", [])]}

    worst = 0.0
    for a, b in zip(arm, x86, strict=True):
        if shape(a) != shape(b):
            return False, worst, f"arm64 {json.dumps(a)} but x86 {json.dumps(b)}"
        for da, db in zip(a["digits"], b["digits"], strict=True):
            if max(abs(u - v) for u, v in zip(da["box"], db["box"], strict=True)) <= BOX_PX:
                worst = max(worst, abs(da["confidence"] - db["confidence"]) * 256)
            elif not same_place(da["box"], db["box"]):
                return False, worst, f"arm64 {json.dumps(a)} but x86 {json.dumps(b)}"
    ok = worst <= steps + 0.03  # confidences are rounded to 4 decimals (0.03 of a step)
    return ok, worst, "" if ok else f"confidence off by {worst:.1f} steps"


def x86_reference(cfg: PiConfig, run: Path) -> dict[str, dict[str, list[dict]]]:
    """This machine's outputs on the same files, through the same CLI, per (model, command)."""
    exe = Path(sys.executable).parent / "mnist-edge"
    out: dict[str, dict[str, list[dict]]] = {}
    for model in sorted({m for _, m in _runs(cfg)}):
        rt = REFERENCE[Path(model).suffix]
        out[model] = {}
        for name, cmd in commands(cfg, str(run), rt, model).items():
            r = subprocess.run([str(exe), *cmd], capture_output=True, text=True, timeout=600,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if r.returncode != 0:
                raise RuntimeError(f"x86 {' '.join(cmd[:1])} {model} failed: {r.stderr[-2000:]}")
            out[model][name] = parse(r.stdout, str(run))
    return out


def run_all(cfg: PiConfig) -> int:
    if cfg.suite not in SUITES:
        raise UserError(f"--suite {cfg.suite}: expected {' or '.join(SUITES)}")
    if not cfg.runtimes:
        cfg.runtimes = [rt for rt, venv in RUNTIME_VENV.items() if venv in SUITES[cfg.suite]]
    for cpu in cfg.cpus:
        if cpu not in CPUS:
            raise UserError(f"--cpus {cpu}: expected {' or '.join(CPUS)}")
    for rt in cfg.runtimes:
        if rt not in RUNTIME_VENV:
            raise UserError(f"--runtimes {rt}: expected one of {', '.join(RUNTIME_VENV)}")
        if RUNTIME_VENV[rt] not in SUITES[cfg.suite]:
            raise UserError(f"--runtimes {rt}: not on {cfg.suite} (no wheel of it for that release's Python)")
    if os.geteuid() != 0:
        raise UserError("needs root: it mounts /proc, /sys and /dev into the arm64 rootfs and chroots "
                        "there (run it with sudo)")
    ensure_binfmt()
    base = cache_dir(cfg) / "pi-rootfs"
    base.mkdir(parents=True, exist_ok=True)
    report: dict = {"suite": cfg.suite, "cpus": {}, "steps": cfg.steps}
    with open(base / ".lock", "w") as lock, ExitStack() as stack:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time per cache: they share the mounts
        root = ensure_rootfs(cfg, base)
        unmount_all(root)  # what a killed run may have left
        guard(base / ".lock", root)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pi-emulated-")))
        wheel = build_wheel(tmp)
        host_run = root / INSIDE.relative_to("/") / "run"
        if host_run.exists():
            shutil.rmtree(host_run)
        host_run.mkdir(parents=True)
        shutil.copy(wheel, host_run / wheel.name)
        make_inputs(cfg, host_run)
        run = str(INSIDE / "run")
        reference = x86_reference(cfg, host_run)
        stack.enter_context(mounted(root))
        venvs = ensure_venvs(cfg, root, f"{run}/{wheel.name}")
        failed = 0
        for cpu in cfg.cpus:
            with as_cpu(root, cpu):
                seen: dict = {"doctor": {}, "runs": {}}
                for name, venv in venvs.items():
                    r = chroot(root, [f"{venv}/bin/mnist-edge", "doctor", "--model", f"{run}/models"],
                               cpu, cwd=run, check=False)
                    seen["doctor"][name] = {"returncode": r.returncode, "stdout": r.stdout}
                    print(f"--- {cpu} ({CPUS[cpu]}), {name} venv: mnist-edge doctor (exit {r.returncode})")
                    print(r.stdout, end="", flush=True)
                    failed += r.returncode != 0
                for rt, model in _runs(cfg):
                    venv = venvs[RUNTIME_VENV[rt]]
                    for name, cmd in commands(cfg, run, rt, model).items():
                        r = chroot(root, [f"{venv}/bin/mnist-edge", *cmd], cpu, cwd=run, check=False)
                        arm = parse(r.stdout, run) if r.returncode == 0 else []
                        x86 = reference[model][name]
                        same, worst, why = compare(arm, x86, cfg.steps) if r.returncode == 0 else \
                            (False, 0.0, f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
                        failed += not same
                        seen["runs"][f"{rt} {model} {name}"] = {"arm64": arm, "x86": x86, "same": same,
                                                                 "max_steps": worst, "why": why}
                        print(f"{'✓' if same else '✗'} {cpu} {rt:<14} {model:<18} {name:<13} "
                              f"{len(arm):>3} results {'same as x86' if same else 'DIFFER: ' + why}"
                              f"{f' (confidence within {worst:.1f} int8 steps)' if same else ''}", flush=True)
                report["cpus"][cpu] = seen
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'all the same as x86' if not failed else f'{failed} differ from x86 or failed'} "
          "(no timings: under emulation they say nothing about a Pi)")
    return 1 if failed else 0


def get_args_parser() -> argparse.ArgumentParser:
    d = PiConfig()
    p = argparse.ArgumentParser("pi_emulated", description=__doc__.splitlines()[0])
    p.add_argument("--suite", type=str, default=d.suite, choices=tuple(SUITES),
                   help="Raspberry Pi OS's Debian base: trixie (Python 3.13; today's image, the default) "
                        "or bookworm (3.11)")
    p.add_argument("--cpus", type=str, default=",".join(d.cpus), help="pi4, pi5 or both (comma-separated)")
    p.add_argument("--runtimes", type=str, default="",
                   help="litert, tflite-runtime, onnxruntime (comma-separated; default: every one the "
                        "suite can install)")
    p.add_argument("--models", type=str, default=",".join(d.models), help="int8, fp32 or both")
    p.add_argument("--digits", type=int, default=d.digits, help="MNIST test digits to read one by one")
    p.add_argument("--frames", type=int, default=d.frames, help="synthetic frames of 1-4 digits")
    p.add_argument("--camera", type=str, default=d.camera, choices=("all", "int8", "none"),
                   help="camera runs over the folder and the video: for every model, int8 only, or none")
    p.add_argument("--cache", type=str, default=d.cache,
                   help="where the rootfs is kept (default: $MNIST_EDGE_CACHE or ~/.cache/mnist-edge)")
    p.add_argument("--mirror", type=str, default=d.mirror,
                   help="Debian mirror URL (default: the host's, from /etc/apt/sources.list.d/)")
    p.add_argument("--offline", action="store_true", help="never build: use the cached rootfs and venvs")
    p.add_argument("--lean", action="store_true",
                   help="what CI runs: fp32 models in LiteRT only, the camera with int8 models in "
                        "LiteRT and tflite-runtime (bookworm) only")
    p.add_argument("--steps", type=int, default=d.steps, help="confidence tolerance in int8 output steps")
    p.add_argument("--json", type=str, default=d.json, help="write every output compared here")
    p.add_argument("--data", type=str, default=d.data,
                   help="MNIST npz or IDX folder (default: $MNIST_EDGE_DATA, then Keras' cache)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = get_args_parser().parse_args(argv)
    cfg = PiConfig(suite=a.suite, cpus=a.cpus.split(","), runtimes=[r for r in a.runtimes.split(",") if r],
                   models=a.models.split(","),
                   digits=a.digits, frames=a.frames, camera=a.camera, cache=a.cache, mirror=a.mirror,
                   offline=a.offline, steps=a.steps, json=a.json, data=a.data, lean=a.lean)
    for m in cfg.models:
        if m not in ("int8", "fp32"):
            print(f"pi_emulated: error: --models {m}: expected int8 or fp32", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the unmounts
    try:
        return run_all(cfg)
    except UserError as e:
        print(f"pi_emulated: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
