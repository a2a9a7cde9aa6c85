"""The speed gate on constructed bench rows: it fires on a slow int8 file and stays quiet otherwise."""

from __future__ import annotations

import copy

from benchmarks.report import markdown_page, table
from benchmarks.speed import speed_gate, speed_lines


def row(file, runtime, threads, p50, img_s, acc=0.99, model="edge"):
    prec = "int8" if "int8" in file else "fp32"
    return {"model": model, "file": file, "format": file.rsplit(".", 1)[1], "runtime": runtime,
            "precision": prec, "threads": threads, "size_bytes": 40_000, "accuracy": acc, "delta_pp": 0.0,
            "agreement": 1.0, "gate": "pass" if prec == "int8" else None,
            "latency_us": {"p50": p50, "p90": p50, "p99": p50, "max": p50, "p50_spread_pct": 1.0},
            "throughput": {"batch": 256, "images_per_s": img_s}, "load_ms": 1.0, "first_inference_ms": 0.1,
            "peak_rss_mb": 50.0}


FAST = [row("model_fp32.tflite", "litert", 1, 30.0, 40_000),
        row("model_int8.tflite", "litert", 1, 15.0, 80_000),
        row("model_fp32.onnx", "onnxruntime", 1, 40.0, 30_000),
        row("model_int8.onnx", "onnxruntime", 1, 35.0, 35_000),
        row("model_fp32.tflite", "litert", 2, 28.0, 70_000),
        row("model_int8.tflite", "litert", 2, 14.0, 150_000)]


def test_quiet_when_every_int8_file_is_faster():
    rows = copy.deepcopy(FAST)
    speed = speed_gate(rows, require=1.1)
    assert speed["int8_slower_than_fp32"] == [] and speed["passed"]
    tfl = next(r for r in rows if r["file"] == "model_int8.tflite" and r["threads"] == 1)
    assert tfl["int8_speedup"] == {"p50": 2.0, "throughput": 2.0} and not tfl["int8_slower"]
    assert speed["recommended"] == {"file": "model_int8.tflite", "runtime": "litert", "threads": 2,
                                    "p50_us": 14.0}
    assert speed["more_threads_slower"] == []
    text = "\n".join(speed_lines(speed))
    assert "⚠" not in text and "✓ passed" in text and "recommended here: model_int8.tflite in litert" in text


def test_fires_on_a_slow_int8_file():
    rows = copy.deepcopy(FAST)
    slow = next(r for r in rows if r["file"] == "model_int8.onnx")
    slow["latency_us"]["p50"] = 50.0  # slower than fp32's 40 µs at batch 1
    speed = speed_gate(rows)
    assert speed["int8_slower_than_fp32"] == ["edge model_int8.onnx onnxruntime 1 thr"]
    assert slow["int8_slower"] and slow["int8_speedup"]["p50"] == 0.8
    assert speed["passed"]  # no floor asked for: reported, not failed
    result = {"rows": rows, "speed": speed}
    assert "0.80 ⚠" in table(rows)
    assert "⚠ int8 slower than its fp32 twin" in "\n".join(speed_lines(speed))
    floor = speed_gate(copy.deepcopy(rows), require=1.5)
    assert not floor["passed"] and any("model_int8.onnx" in b for b in floor["below_required"])
    assert "--require-int8-speedup 1.5: ✗ FAILED" in "\n".join(speed_lines(floor))
    assert result["speed"]["recommended"]["file"] == "model_int8.tflite"


def test_throughput_alone_can_make_int8_slower():
    rows = copy.deepcopy(FAST)
    next(r for r in rows if r["file"] == "model_int8.tflite" and r["threads"] == 2)["throughput"][
        "images_per_s"] = 60_000
    speed = speed_gate(rows)
    assert speed["int8_slower_than_fp32"] == ["edge model_int8.tflite litert 2 thr"]


def test_recommendation_skips_files_that_fail_accuracy_and_notes_slow_threads():
    rows = copy.deepcopy(FAST)
    for r in rows:
        if r["file"] == "model_int8.tflite":
            r["accuracy"] = 0.90  # below --min-acc: never recommended however fast
        if r["threads"] == 2 and r["file"] == "model_fp32.tflite":
            r["latency_us"]["p50"] = 45.0  # two threads slower than one at batch 1
    speed = speed_gate(rows, min_acc=0.99)
    assert speed["recommended"]["file"] == "model_fp32.tflite" and speed["recommended"]["threads"] == 1
    assert [n["file"] for n in speed["more_threads_slower"]] == ["model_fp32.tflite"]
    assert "use --threads 1" in "\n".join(speed_lines(speed))


def test_markdown_page_carries_the_speed_section():
    rows = copy.deepcopy(FAST)
    speed = speed_gate(rows, require=1.1)
    result = {"device": {"name": "box", "runtimes": {}}, "gate": {"min_acc": 0.99, "max_drop_pp": 0.3,
              "passed": True}, "data": {"test_size": 10000, "source": "x"}, "settings": {},
              "rows": rows, "summary": None, "speed": speed, "seconds": 1.0,
              "environment": {"created": "now", "mnist_edge": "0", "git_commit": "abc"}}
    md = markdown_page(result)
    assert "recommended here: model_int8.tflite in litert" in md and "| int8 × |" in md
