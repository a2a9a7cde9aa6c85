"""The layering: edge/ is the bottom layer (the device runtime and the toolkit's shared base: errors,
atomic writes and provenance, the model contract, the dispatcher); train/, export/ and benchmarks/
build on it, never the other way round. The one place edge/ names an upper layer is the
dispatcher's COMMANDS table in edge/cli.py, which imports a stage only when its command runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from tests.conftest import REPO

UPPER = {"train", "export", "benchmarks"}  # the stages, which build on edge/
HEAVY = {"tensorflow", "keras", "tf2onnx", "onnx"}  # the framework: never on a device
EDGE = sorted((REPO / "edge").glob("*.py"))


def imported(path) -> set[str]:
    """Every module a file imports, at the top or inside a function (absolute names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.add(node.module or "")
        elif isinstance(node, ast.ImportFrom):  # relative: inside edge/
            out.add("edge")
    return out


def test_edge_never_imports_an_upper_layer_or_tensorflow():
    assert EDGE
    bad = {f"{p.name}: {m}" for p in EDGE for m in imported(p) if m.split(".")[0] in UPPER | HEAVY}
    assert not bad, f"edge/ must stay the bottom layer and TensorFlow-free: {sorted(bad)}"


def test_only_the_dispatcher_names_a_stage():
    """A module name such as "train.train" in edge/ (for import_module) appears only in
    edge/cli.py's COMMANDS, so the dispatcher is the one, visible, way up."""
    from edge.cli import COMMANDS

    table = {module for module, _ in COMMANDS.values()}
    assert {m.split(".")[0] for m in table} - {"edge"} == UPPER
    pattern = re.compile(rf"^({'|'.join(UPPER)})(\.\w+)+$")
    for p in EDGE:
        names = {n.value for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Constant)
                 and isinstance(n.value, str) and pattern.match(n.value) and _module(n.value)}
        assert names <= (table if p.name == "cli.py" else set()), f"{p.name} names {sorted(names)}"


def _module(name: str) -> bool:
    """Whether a dotted name is a module of this repo (a file name such as "train.json" is not)."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_importing_all_of_edge_loads_no_upper_layer():
    code = ("import importlib, pkgutil, sys, edge\n"
            "for m in pkgutil.iter_modules(edge.__path__):\n"
            "    importlib.import_module('edge.' + m.name)\n"
            "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = set(r.stdout.split())
    assert "edge" in loaded and "numpy" in loaded
    assert not loaded & (UPPER | HEAVY), sorted(loaded & (UPPER | HEAVY))
