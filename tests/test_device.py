"""edge.device: the board, core and int8 instructions read from a /proc/cpuinfo, and numpy ABIs."""

from __future__ import annotations

import importlib.util

import pytest

from edge.device import int8_line, numpy_abi, parse_cpuinfo, read_cpu
from tests.conftest import REPO

PI = REPO / "tools" / "pi"


def test_pi4_has_no_dot_product():
    cpu = parse_cpuinfo((PI / "cpuinfo-pi4").read_text(), machine="aarch64")
    assert (cpu.arch, cpu.board) == ("arm", "Raspberry Pi 4 Model B Rev 1.4")
    assert cpu.core == "Cortex-A72 (Armv8.0-A)"
    assert cpu.int8_features == []
    assert int8_line(cpu) == "none of asimddp, i8mm: int8 runs on the base SIMD instructions"


def test_pi5_has_the_dot_product():
    cpu = parse_cpuinfo((PI / "cpuinfo-pi5").read_text(), machine="aarch64")
    assert (cpu.board, cpu.core) == ("Raspberry Pi 5 Model B Rev 1.0", "Cortex-A76 (Armv8.2-A)")
    assert cpu.int8_features == ["asimddp"] and int8_line(cpu) == "asimddp (dot product, SDOT/UDOT)"


def test_x86_flags():
    text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\n" \
           "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8\n"
    cpu = parse_cpuinfo(text, machine="x86_64")
    assert (cpu.arch, cpu.core, cpu.board) == ("x86", "Intel(R) Xeon(R)", None)
    assert cpu.int8_features == ["avx2", "avx512_vnni", "amx_int8"]
    assert parse_cpuinfo("", machine="x86_64").core is None and int8_line(parse_cpuinfo("", "x86_64")) \
        == "unknown (no feature flags in /proc/cpuinfo)"


def test_this_machine():
    cpu = read_cpu()
    assert cpu.flags and cpu.core  # a Linux CI machine lists its flags
    assert cpu.hwcap_disagrees == []


def test_numpy_abi_of_installed_interpreters():
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("LiteRT is not installed here")
    assert numpy_abi("ai-edge-litert").startswith("built for numpy 2")
    assert numpy_abi("no-such-distribution") == "not installed"


def test_bench_states_the_int8_instructions_of_its_device():
    """bench.json's device carries what doctor prints; bench.md's legend says what int8 needs."""
    from benchmarks.device import fingerprint
    from benchmarks.report import LEGEND

    assert fingerprint()["int8_instructions"] == int8_line(read_cpu())
    assert "asimddp" in LEGEND and "Cortex-A72" in LEGEND and "VNNI" in LEGEND
