"""`mnist-edge bench` end to end on the tiny exported model: the report, the gate, --compare, errors."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli

pytestmark = pytest.mark.slow
MODELS = Path(__file__).resolve().parent.parent / "models"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def installed_runtimes() -> set[str]:
    from edge.backends import runtime_status

    found = {rt for rt, v in runtime_status().items() if not v.startswith("unavailable")}
    if importlib.util.find_spec("keras") and importlib.util.find_spec("tensorflow"):
        found.add("keras")
    return found


def copy_models(src, dst):
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name in ("model.keras", "train.json", "manifest.json") or f.name.startswith("model_"):
            shutil.copy2(f, dst / f.name)
    return dst


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 300


def one_error_line(r, *needles):
    assert r.returncode == 2, r.stdout[-1500:] + r.stderr[-1500:]
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), r.stderr[-1500:]


@pytest.fixture(scope="module")
def bench(exported, mnist_file, tmp_path_factory):
    """One quick bench of every installed runtime, 1 thread, with a gate low enough to pass."""
    art = copy_models(exported[0], tmp_path_factory.mktemp("bench") / "artifacts")
    r = cli("bench", "--quick", "--artifacts", str(art), "--data", str(mnist_file), "--threads", "1",
            "--min-acc", "0.5", "--max-drop", "5", cwd=art.parent)
    return art, r


def test_bench_writes_a_complete_report(bench):
    art, r = bench
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((art / "bench.json").read_text())
    assert res["schema"] == "mnist-edge/bench/1"
    assert res["gate"]["passed"] and res["gate"]["min_acc"] == 0.5
    dev = res["device"]
    for key in ("name", "cpu_model", "cores", "arch", "os", "python", "runtimes", "cpu_governor",
                "temperature_c", "load_average"):
        assert key in dev
    assert dev["cores"] >= 1 and dev["runtimes"]["onnxruntime"]
    assert res["data"]["test_size"] == 10000 and len(res["data"]["sha256"]["x_test"]) == 64
    assert res["environment"]["packages"]["numpy"]
    files = res["models"]["edge"]["files"]
    assert files["model_int8.tflite"]["sha256"] == files["model_int8.tflite"]["manifest_sha256"]

    rows = res["rows"]
    assert {r["runtime"] for r in rows} == installed_runtimes()
    assert {r["model"] for r in rows} == {"edge"} and "baseline" not in res["models"]
    for row in rows:
        assert not row.get("error"), row
        lat = row["latency_us"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
        assert lat["runs"] >= 30 and len(lat["block_p50s"]) == lat["repeats"]
        assert row["throughput"]["images_per_s"] > 0 and row["throughput"]["batch"] == 256
        assert row["load_ms"] > 0 and row["first_inference_ms"] > 0 and row["peak_rss_mb"] > 10
        assert row["size_bytes"] == (art / row["file"]).stat().st_size
        assert 0.5 < row["accuracy"] <= 1 and row["images"] == 10000
        assert row["gate"] == ("pass" if row["precision"] == "int8" else None)
    keras = [row for row in rows if row["runtime"] == "keras"]
    if keras:
        assert keras[0]["delta_pp"] == 0 and keras[0]["agreement"] == 1
    assert "✓" in r.stdout and "gate" in r.stdout


def test_bench_accuracy_matches_the_classifier(bench, mnist):
    from edge.classifier import Classifier

    art, _ = bench
    row = next(r for r in json.loads((art / "bench.json").read_text())["rows"]
               if r["file"] == "model_int8.tflite" and r["runtime"] == "litert")
    pred = Classifier(art / "model_int8.tflite", "litert", 1).predict_batches(mnist.x_test).argmax(1)
    assert row["accuracy"] == pytest.approx(float((pred == mnist.y_test).mean()), abs=1e-12)


def test_bench_markdown_and_plot(bench):
    art, _ = bench
    md = (art / "bench.md").read_text()
    assert md.startswith("# mnist-edge bench on ") and "| model | runtime |" in md
    assert md.count("| edge |") == len(json.loads((art / "bench.json").read_text())["rows"])
    assert_png(art / "bench.png")



def test_a_file_replaced_since_its_export_is_marked(bench, mnist_file, tmp_path):
    """A model file that is not the one its manifest lists (replaced since the export validated it)
    was only a log warning: bench.md and the printed table gave its figures as the export's."""
    art, first = bench
    assert "not the file its manifest lists" not in (art / "bench.md").read_text() + first.stdout
    swapped = copy_models(art, tmp_path / "swapped")
    shutil.copy2(MODELS / "model_int8.tflite", swapped / "model_int8.tflite")
    r = cli("bench", "--quick", "--artifacts", str(swapped), "--data", str(mnist_file), "--threads", "1",
            "--runtimes", "litert", "--min-acc", "0.5", "--max-drop", "5", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    want = "⚠ edge model_int8.tflite: not the file its manifest lists"
    assert want in r.stdout and want in (tmp_path / "out" / "bench.md").read_text()
    assert "model_fp32.tflite: not the file" not in r.stdout

def test_a_keras_model_retrained_since_the_export_is_left_out(bench, mnist_file, tmp_path):
    """model.keras retrained into the folder after its export: its row and every Δ and agreement
    against it compared the files with another model. It is left out, and Δ is against the Keras
    accuracy the manifest records for the files' own source."""
    art, _ = bench
    other = copy_models(art, tmp_path / "retrained")
    shutil.copy2(MODELS / "model.keras", other / "model.keras")  # not the tiny model exported here
    r = cli("bench", "--quick", "--artifacts", str(other), "--data", str(mnist_file), "--threads", "1",
            "--runtimes", "keras,litert", "--min-acc", "0.5", "--max-drop", "5",
            "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "model.keras: not the model the files here were exported from" in r.stderr, r.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert rows and not [row for row in rows if row["file"] == "model.keras"], rows
    assert {row["file"] for row in rows} >= {"model_fp32.tflite", "model_int8.tflite"}


def test_a_read_only_artifacts_folder_is_refused_before_measuring(bench, monkeypatch):
    """Without --out the reports go into the artifacts folder: one that cannot be written (a
    read-only copy of an export) measured every row, then gave a traceback."""
    import os

    from benchmarks import bench as bench_cli
    from edge.errors import UserError

    art, _ = bench
    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode, **k: False if Path(p) == art else real_access(p, mode, **k))
    monkeypatch.setattr(bench_cli, "run_bench", lambda cfg: pytest.fail("measured before the check"))
    args = bench_cli.get_args_parser().parse_args(["--artifacts", str(art), "--quick"])
    said = re.escape(f"--artifacts {art}: {art} is not writable; bench writes its reports there")
    with pytest.raises(UserError, match=said):
        bench_cli.main(args)


def test_gate_fails_with_a_high_floor_and_baseline_rows_are_labelled(bench, mnist_file, tmp_path):
    art, _ = bench
    base = copy_models(art, tmp_path / "baseline")
    r = cli("bench", "--quick", "--artifacts", str(art), "--baseline", str(base), "--data", str(mnist_file),
            "--threads", "1", "--runtimes", "litert", "--min-acc", "0.9999", "--out", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "✗" in r.stdout and "FAILED" in r.stdout
    res = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert not res["gate"]["passed"]
    pairs = {(row["model"], row["runtime"]) for row in res["rows"]}
    assert pairs == {("edge", "litert"), ("baseline", "litert")}
    gates = {row["file"]: row["gate"] for row in res["rows"]}
    assert gates == {"model_fp32.tflite": None, "model_int8.tflite": "fail"}
    # no Keras row: Δ comes from the manifest's Keras accuracy, agreement is unknown
    int8 = next(row for row in res["rows"] if row["precision"] == "int8")
    assert int8["delta_pp"] is not None and int8["agreement"] is None
    assert "edge vs baseline" in r.stdout and res["summary"]["speedup_vs_baseline_int8_tflite"] > 0


def test_compare_merges_devices(bench, tmp_path):
    art, _ = bench
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    shutil.copy(art / "bench.json", a)
    other = json.loads(a.read_text())
    other["device"]["name"] = "other-device"
    b.write_text(json.dumps(other))
    r = cli("bench", "--compare", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    first = other["rows"][0]
    name = json.loads(a.read_text())["device"]["name"]
    lines = [line for line in r.stdout.splitlines() if f" {first['runtime']} " in line
             and f" {first['precision']} " in line]
    assert any(line.startswith(name) for line in lines)
    assert any(line.startswith("other-device") for line in lines)
    merged = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(merged["rows"]) == 2 * len(other["rows"])
    assert {d["name"] for d in merged["devices"]} == {name, "other-device"}
    assert "other-device" in (tmp_path / "cmp" / "compare.md").read_text()
    assert_png(tmp_path / "cmp" / "compare.png")


def test_bad_inputs_are_one_line(tmp_path, mnist_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(cli("bench", "--artifacts", str(empty), "--data", str(mnist_file)), str(empty), "export")
    one_error_line(cli("bench", "--artifacts", str(tmp_path / "nope")), "nope: no such folder")
    bad = tmp_path / "bench.json"
    bad.write_text('{"schema": "mnist-edge/bench/1", "rows": [')
    one_error_line(cli("bench", "--compare", str(bad), str(bad)), "bench.json: not a readable bench.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "something/else"}))
    one_error_line(cli("bench", "--compare", str(wrong)), "wrong.json: schema 'something/else'")
    one_error_line(cli("bench", "--artifacts", str(empty), "--threads", "0"), "--threads")


def test_worker_percentiles_and_spread():
    from benchmarks.worker import latency

    class Fake:
        def classify(self, images):
            return [sum(range(200))]

    lat = latency(Fake(), np.zeros((7, 28, 28), np.uint8), runs=40, min_seconds=0, repeats=4, warmup=2)
    assert lat["runs"] == 40 and len(lat["block_p50s"]) == 4
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["p50_spread_pct"] >= 0


def test_flags_default_to_the_config():
    """No flags give BenchConfig() itself, and --quick only what QUICK overrides."""
    from dataclasses import replace

    from benchmarks.bench import QUICK, BenchConfig, config, get_args_parser

    parse = get_args_parser().parse_args
    assert config(parse([])) == BenchConfig()
    assert config(parse(["--quick"])) == replace(BenchConfig(), quick=True, **QUICK)
    cfg = config(parse(["--threads", "2, all", "--runtimes", "litert,keras", "--runs", "7"]))
    assert (cfg.threads, cfg.runtimes, cfg.runs) == (("2", "all"), ("litert", "keras"), 7)
