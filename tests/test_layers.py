"""Per-layer latency (benchmarks.layers, bench --layers): a row per layer, summing to the whole."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import layers
from tests.conftest import cli

pytestmark = pytest.mark.slow


def _ops(path) -> list[str]:
    """The file's op types in order, as LiteRT lists them (delegate nodes left out)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return [o["op_name"] for o in it._get_ops_details() if o["op_name"] != "DELEGATE"]


def test_tflite_a_row_per_op_and_the_sum_is_the_whole(exported):
    out, _ = exported
    c = layers.compare(out / "model_fp32.tflite", out / "model_int8.tflite")
    for prec in ("fp32", "int8"):
        t = c[prec]
        ops = _ops(out / f"model_{prec}.tflite")
        assert [o["op"] for o in t["ops"]] == ops and ops.count("CONV_2D") >= 4
        assert t["sum_us"] == pytest.approx(sum(o["us"] for o in t["ops"]), abs=0.01)
        # the full-length prefix is the file itself: timed apart, it must land close
        assert 0.7 < t["sum_us"] / t["whole_us"] < 1.4, t
    assert all(r["fp32"] and r["int8"] for r in c["rows"])  # same ops in both: every row paired
    md = layers.markdown(c)
    assert md.count("| CONV_2D |") == _ops(out / "model_int8.tflite").count("CONV_2D")
    assert "**whole model**" in md


def test_onnx_profiled_nodes_account_for_most_of_the_run(exported):
    out, _ = exported
    c = layers.compare(out / "model_fp32.onnx", out / "model_int8.onnx")
    for prec in ("fp32", "int8"):
        t = c[prec]
        assert all(o["us"] > 0 for o in t["ops"])
        assert 0.3 < t["sum_us"] / t["whole_us"] <= 1.05, t
    import onnx

    n_conv = [n.op_type for n in onnx.load(out / "model_fp32.onnx").graph.node].count("Conv")
    convs = [r for r in c["rows"] if r["fp32"] and r["fp32"]["op"] == "Conv"]
    assert len(convs) == n_conv >= 4 and all(r["int8"] and "Conv" in r["int8"]["op"] for r in convs)


def test_bench_layers_section(exported, mnist_file, tmp_path):
    art = tmp_path / "artifacts"
    art.mkdir()
    for f in exported[0].iterdir():
        if f.name.startswith("model_") or f.name in ("model.keras", "manifest.json"):
            shutil.copy2(f, art / f.name)
    r = cli("bench", "--quick", "--layers", "--artifacts", str(art), "--data", str(mnist_file),
            "--threads", "1", "--runtimes", "litert,onnxruntime", "--min-acc", "0.5", "--max-drop", "5")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads((art / "bench.json").read_text())
    assert {c["runtime"] for c in result["layers"]} == {"litert", "onnxruntime"}
    md = (art / "bench.md").read_text()
    assert "## Per-layer latency" in md and md.count("**sum of layers**") == 2
    assert "per layer, edge: model_fp32.tflite vs model_int8.tflite" in r.stdout
    assert "recommended here:" in r.stdout and result["speed"]["recommended"]["runtime"] in (
        "litert", "onnxruntime")


def test_require_int8_speedup_sets_the_exit_code(exported, mnist_file, tmp_path):
    art = tmp_path / "artifacts"
    art.mkdir()
    for f in exported[0].iterdir():
        if f.name.startswith("model_") or f.name == "manifest.json":
            shutil.copy2(f, art / f.name)
    args = ("bench", "--quick", "--artifacts", str(art), "--data", str(mnist_file), "--threads", "1",
            "--runtimes", "litert", "--min-acc", "0.5", "--max-drop", "5")
    r = cli(*args, "--require-int8-speedup", "1000")
    assert r.returncode == 1 and "--require-int8-speedup 1000.0: ✗ FAILED" in r.stdout, r.stdout[-1500:]
    assert json.loads((art / "bench.json").read_text())["speed"]["passed"] is False
    r = cli(*args, "--require-int8-speedup", "0.001")
    assert r.returncode == 0 and "--require-int8-speedup 0.001: ✓ passed" in r.stdout, r.stdout[-1500:]
    bad = cli(*args, "--require-int8-speedup", "0")
    assert bad.returncode == 2 and "--require-int8-speedup 0.0: expected a ratio > 0" in bad.stderr
