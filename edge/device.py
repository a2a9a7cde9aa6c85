"""What CPU this is, for `mnist-edge doctor`: the board, the core, the int8 instructions it has, and
the numpy ABI each interpreter was built against.

    >>> from edge.device import read_cpu
    >>> cpu = read_cpu()
    >>> cpu.int8_features is None or isinstance(cpu.int8_features, list)
    True

On a Pi 5, `cpu.board, cpu.core, cpu.int8_features` is
`('Raspberry Pi 5 Model B Rev 1.0', 'Cortex-A76 (Armv8.2-A)', ['asimddp'])`.

int8 inference is integer dot products. XNNPACK (LiteRT, tflite-runtime) and onnxruntime's MLAS
pick their int8 kernels at start from what the CPU reports:
- Arm: `asimddp` (SDOT/UDOT, Armv8.2 dot product; the Pi 5's Cortex-A76 has it) and `i8mm`
  (SMMLA, Armv8.6). The Pi 4's Cortex-A72 (Armv8.0) has neither: int8 runs on plain NEON widening
  multiply-accumulates, several instructions where SDOT needs one.
- x86: `avx2` (VPMADDUBSW: u8 x s8 pairs summed into int16, which can saturate), `avx512_vnni` /
  `avx_vnni` (VPDPBUSD: 4 products straight into int32), `amx_int8` (tile matrix multiply).

Everything comes from /proc/cpuinfo (and, on Linux/arm64, the kernel's HWCAP bits, which are what
the kernels themselves test); a field that is missing is None, never a guess.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

CPUINFO = "/proc/cpuinfo"
DEVICE_TREE_MODEL = "/proc/device-tree/model"
# (implementer, part) as /proc/cpuinfo gives them -> core; 0x41 is Arm Ltd.
ARM_CORES = {
    (0x41, 0xd03): "Cortex-A53 (Armv8.0-A)",  # Pi 3, Pi Zero 2
    (0x41, 0xd04): "Cortex-A35 (Armv8.0-A)",
    (0x41, 0xd05): "Cortex-A55 (Armv8.2-A)",
    (0x41, 0xd07): "Cortex-A57 (Armv8.0-A)",
    (0x41, 0xd08): "Cortex-A72 (Armv8.0-A)",  # Pi 4, Pi 400, CM4
    (0x41, 0xd0b): "Cortex-A76 (Armv8.2-A)",  # Pi 5, CM5
    (0x41, 0xd0c): "Neoverse-N1 (Armv8.2-A)",
    (0x41, 0xd40): "Neoverse-V1 (Armv8.4-A)",
    (0x41, 0xd49): "Neoverse-N2 (Armv9.0-A)",
}
# The flags (as /proc/cpuinfo spells them) that int8 kernels use, in the order worth knowing.
INT8_FEATURES = {
    "arm": {"asimddp": "dot product, SDOT/UDOT", "i8mm": "int8 matrix multiply, SMMLA"},
    "x86": {"avx2": "VPMADDUBSW, 16-bit pair sums", "avx512_vnni": "VPDPBUSD",
            "avx_vnni": "VPDPBUSD, VEX", "amx_int8": "tile matrix multiply"},
}
_HWCAP = {"asimddp": (16, 1 << 20), "i8mm": (26, 1 << 13)}  # flag -> (AT_HWCAP or AT_HWCAP2, bit)


@dataclass
class CpuInfo:
    arch: str                 # "arm", "x86" or platform.machine() for anything else
    machine: str              # platform.machine(): aarch64, x86_64, ...
    board: str | None         # e.g. "Raspberry Pi 4 Model B Rev 1.4" (device tree, or cpuinfo's Model)
    core: str | None          # e.g. "Cortex-A72 (Armv8.0-A)", or x86's model name
    flags: set[str] = field(default_factory=set)  # every feature flag the kernel lists
    int8_features: list[str] = field(default_factory=list)  # the INT8_FEATURES this CPU has
    hwcap_disagrees: list[str] = field(default_factory=list)  # int8 flags cpuinfo and HWCAP differ on


def parse_cpuinfo(text: str, machine: str | None = None) -> CpuInfo:
    """A /proc/cpuinfo's board, core and int8 features (Arm: Features/CPU part; x86: flags/model name)."""
    machine = machine or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and v.strip():
            fields.setdefault(k.strip(), v.strip())  # the first core's values
    m = machine.lower()
    arch = "arm" if m in ("aarch64", "arm64") or m.startswith("armv") else \
        "x86" if m in ("x86_64", "amd64", "i686", "i386") else m
    flags = set((fields.get("Features") or fields.get("flags") or "").split())
    core = fields.get("model name")
    if arch == "arm":
        try:
            key = (int(fields["CPU implementer"], 16), int(fields["CPU part"], 16))
            core = ARM_CORES.get(key, f"implementer {key[0]:#x} part {key[1]:#x}")
        except (KeyError, ValueError):
            core = None
    wanted = INT8_FEATURES.get(arch, {})
    return CpuInfo(arch, machine, fields.get("Model"), core, flags, [f for f in wanted if f in flags])


def _hwcap(at: int) -> int | None:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = [ctypes.c_ulong]
        return int(libc.getauxval(at))
    except (OSError, AttributeError):
        return None


def read_cpu(cpuinfo: str = CPUINFO) -> CpuInfo:
    """This machine's CpuInfo; the device tree's model, when there is one, names the board."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    info = parse_cpuinfo(text)
    try:
        info.board = Path(DEVICE_TREE_MODEL).read_bytes().rstrip(b"\0").decode(errors="replace") or info.board
    except OSError:
        pass
    if info.machine == "aarch64" and text:  # what the kernels test: HWCAP, not the text
        for flag, (at, bit) in _HWCAP.items():
            caps = _hwcap(at)
            if caps is not None and bool(caps & bit) != (flag in info.flags):
                info.hwcap_disagrees.append(flag)
    return info


def int8_line(info: CpuInfo) -> str:
    """What doctor prints about int8 instructions on this CPU."""
    wanted = INT8_FEATURES.get(info.arch)
    if not wanted:
        return f"no int8 instruction table for {info.machine}"
    if not info.flags:
        return f"unknown (no feature flags in {CPUINFO})"
    have = ", ".join(f"{f} ({wanted[f]})" for f in info.int8_features)
    line = have or f"none of {', '.join(wanted)}: int8 runs on the base SIMD instructions"
    if info.hwcap_disagrees:
        line += f"; HWCAP disagrees with {CPUINFO} on {', '.join(info.hwcap_disagrees)}"
    return line


def emulated() -> str | None:
    """The CPU qemu-user emulates when QEMU_CPU is set (as tools/pi_emulated.py runs us), else None."""
    return os.environ.get("QEMU_CPU") or None


def numpy_abi(dist: str) -> str:
    """Which numpy C ABI an installed distribution's extension modules were built against.

    A module built with numpy 2's headers looks for numpy._core._multiarray_umath (and falls back to
    numpy.core, so it loads under numpy 1 too); one built with numpy 1's names only numpy.core, and
    fails to import under numpy 2. Modules without either string do not use numpy's C API."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    v2 = v1 = False
    for f in files:
        if not (f.name.endswith(".so") or ".so." in f.name or f.name.endswith(".pyd")):
            continue
        try:
            data = Path(f.locate()).read_bytes()
        except OSError:
            continue
        v2 |= b"numpy._core._multiarray_umath" in data
        v1 |= b"numpy.core._multiarray_umath" in data
    if v2:
        return "built for numpy 2 (loads with numpy 1.x or 2.x)"
    if v1:
        return "built for numpy 1 (needs numpy<2)"
    return "no numpy C API (any numpy)"
