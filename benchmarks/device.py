"""What machine a benchmark ran on: enough to tell two devices (or two states of one) apart.

    >>> from benchmarks.device import fingerprint
    >>> fp = fingerprint()                     # fp["cpu_model"]: 'AMD EPYC', 'Cortex-A76', ... or None
    >>> fp["arch"] in ("x86_64", "aarch64", "armv7l", "arm64", "AMD64")
    True

Everything read from /proc or /sys is None where the file is missing or unreadable (containers,
macOS), never a guess.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from edge.backends import runtime_status
from edge.device import int8_line, read_cpu

_MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")  # e.g. Raspberry Pi 5


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00 \n") or None
    except OSError:
        return None


def _cpuinfo(*keys: str) -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for key in keys:  # x86 says "model name"; Raspberry Pi OS says "Model" or "Hardware"
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == key and v.strip():
                return v.strip()
    return None


def temperature_c() -> float | None:
    """The first thermal zone's temperature (on a Pi, the SoC), or None."""
    raw = _read("/sys/class/thermal/thermal_zone0/temp")
    try:
        return round(int(raw) / 1000, 1) if raw else None
    except ValueError:
        return None


def _mem_total_mb() -> float | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def usable_cores() -> int:
    """Cores this process may run on (affinity and cgroup cpusets included where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def fingerprint(name: str | None = None) -> dict:
    """The device: a display name, CPU, cores, OS, Python, runtimes, governor, temperature, load."""
    cpu = "/sys/devices/system/cpu/cpu0/cpufreq"
    max_khz = _read(f"{cpu}/cpuinfo_max_freq")
    board = next((m for m in map(_read, _MODEL_FILES) if m), None)
    runtimes = runtime_status()
    runtimes["keras"] = _version("keras")
    runtimes["tensorflow"] = _version("tensorflow-cpu") or _version("tensorflow")
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "name": name or board or platform.node() or "unknown",
        "hostname": platform.node() or None,
        "board": board,
        "cpu_model": _cpuinfo("model name", "Model", "Hardware") or platform.processor() or None,
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "arch": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "memory_mb": _mem_total_mb(),
        "runtimes": runtimes,
        "cpu_governor": _read(f"{cpu}/scaling_governor"),
        "cpu_max_mhz": int(max_khz) // 1000 if max_khz and max_khz.isdigit() else None,
        "temperature_c": temperature_c(),
        "int8_instructions": int8_line(read_cpu()),  # what the int8 kernels can use on this CPU
        "load_average": load,  # 1, 5, 15 min at the start: other work skews every timing
    }
