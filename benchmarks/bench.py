"""`mnist-edge bench`: accuracy against latency for every exported file in every installed runtime.

    mnist-edge bench                                   # artifacts/ (and artifacts/baseline/ if there)
    mnist-edge bench --artifacts runs/a --threads 1,4 --runs 2000 --min-seconds 5
    mnist-edge bench --compare pi5/bench.json laptop/bench.json --out cmp

Rows are model (edge, baseline) x file (model.keras, model_{fp32,int8}.{tflite,onnx}) x runtime
(Keras, LiteRT, tflite-runtime, onnxruntime: those that import here) x threads. Each row runs in a
fresh process (benchmarks.worker) through the same `edge.Classifier` a device uses. Accuracy is
measured once per file x runtime on the whole test set, against the Keras float model. Writes
bench.json (schema mnist-edge/bench/1), bench.md and bench.png; exits 1 when an int8 file is below
--min-acc or loses more than --max-drop points.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmarks import fleet, report
from benchmarks.compare import SCHEMA, compare
from benchmarks.device import fingerprint, temperature_c, usable_cores
from benchmarks.layers import text as layers_text
from benchmarks.speed import speed_gate, speed_lines
from benchmarks.worker import RESULT_TAG
from edge.backends import default_runtime
from edge.classifier import Classifier
from edge.contract import (
    DEFAULT_RUNTIMES,
    EXPORTED,
    FORMATS,
    KERAS_MODEL,
    MANIFEST,
    RUNTIMES,
    hash_files,
    incomplete_export,
    model_file,
    read_manifest,
)
from edge.errors import UserError
from edge.provenance import atomic_path, atomic_write_bytes, atomic_write_json, environment

log = logging.getLogger(__name__)
FILES = (KERAS_MODEL, *EXPORTED)  # what a bench measures in an exported folder
VERSIONS = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu", "keras", "openvino",
            "matplotlib")
WORKER_TIMEOUT_S = 900


@dataclass
class BenchConfig:
    artifacts: str = "artifacts"     # model.keras, model_{fp32,int8}.{tflite,onnx}, manifest.json
    baseline: str | None = None      # the same from --arch baseline; None: ARTIFACTS/baseline if it exists
    data: str | None = None          # MNIST location (see train.data.load_mnist)
    runs: int = 1000                 # timed single-image runs per row, at least
    min_seconds: float = 1.0         # ... and at least this long (throughput gets half of it)
    repeats: int = 5                 # timed blocks per row; their medians' spread shows the noise
    warmup: int = 100                # untimed single-image runs first
    batch: int = 256                 # batch size for throughput and the accuracy pass
    threads: tuple = ("1", "all")    # thread counts; "all" = every usable core
    out: str | None = None           # where bench.{json,md,png} go; None: the artifacts folder
    min_acc: float = 0.99            # gate: int8 accuracy floor
    max_drop: float = 0.3            # gate: int8 may lose at most this many points against Keras float
    name: str | None = None          # device name in reports; None: board model or hostname
    runtimes: tuple | None = None    # only these runtimes (keras and those in edge.contract.RUNTIMES)
    quick: bool = False              # a smoke test: few timed runs, figures are not measurements
    require_int8_speedup: float | None = None  # exit 1 when an int8 row is less than this many times
    #                                            faster than its fp32 twin (p50 or img/s); None: report only
    layers: bool = False             # also time each layer of every .tflite/.onnx file (benchmarks.layers)
    thread_counts: list = field(default_factory=list)  # resolved from `threads`


QUICK = {"runs": 30, "min_seconds": 0.0, "repeats": 3, "warmup": 5}  # --quick: what it overrides


def resolve_threads(spec) -> list[int]:
    out = []
    for t in spec:
        t = str(t).strip()
        if t == "all":
            n = usable_cores()
        elif t.isdigit() and int(t) > 0:
            n = int(t)
        else:
            raise UserError(f"--threads {','.join(map(str, spec))}: expected positive integers or 'all'")
        if n not in out:
            out.append(n)
    if not out:
        raise UserError("--threads: expected at least one thread count, e.g. 1,all")
    return out


def load_model_dir(folder: Path, role: str) -> dict:
    """The files a bench can measure in one exported folder, with their manifest's provenance."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (expected the output of `mnist-edge export --int8`)")
    present = [f for f in FILES if (folder / f).is_file()]
    if not any(f in EXPORTED for f in present):
        raise UserError(f"{folder}: no model_{{fp32,int8}}.{{tflite,onnx}} files "
                        "(expected the output of `mnist-edge export --int8`)")
    partial = incomplete_export(folder)
    if partial:
        raise UserError(f"{folder}: incomplete export: {', '.join(partial)} but no {MANIFEST} "
                        "(the manifest is written last: was `mnist-edge export` interrupted? run it again)")
    manifest = read_manifest(folder) or {}
    for f in present:
        _check_loads(folder / f)
    files = {}
    for h in hash_files(folder, manifest, present):
        if h.listed and h.listed != h.sha256:
            log.warning("%s: differs from the file %s describes", folder / h.name, MANIFEST)
        files[h.name] = {"bytes": (folder / h.name).stat().st_size, "sha256": h.sha256,
                         "manifest_sha256": h.listed}
    return {"role": role, "dir": str(folder), "arch": manifest.get("arch", role), "files": files,
            "keras_test_accuracy": manifest.get("keras_test_accuracy"), "data": manifest.get("data")}


def _check_loads(path: Path) -> None:
    """A model file that cannot load is the user's to fix: one line, exit 2, before anything is measured."""
    if path.suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path}: not a Keras model (a .keras file is a zip archive)")
        return
    try:
        runtime = default_runtime(path)
    except UserError:
        return  # no runtime for it here: plan() leaves it out
    Classifier(path, runtime)  # the model contract, checked as a device would (edge.contract)


def plan(models: list[dict], cfg: BenchConfig, status: dict) -> list[dict]:
    """One job per model x file x runtime x threads; accuracy on the most-threads job of each."""
    keras_ok = bool(importlib.util.find_spec("keras")) and bool(importlib.util.find_spec("tensorflow"))
    if not keras_ok:
        log.info("keras/tensorflow not installed: no Keras float rows; Δ is against manifest.json")
    ready = [rt for rt, v in status.items() if not v.startswith("unavailable")]
    if cfg.runtimes:
        unknown = set(cfg.runtimes) - {"keras", *status}
        if unknown:
            raise UserError(f"--runtimes {','.join(cfg.runtimes)}: expected some of "
                            f"keras, {', '.join(status)}")
        for rt in sorted(set(cfg.runtimes) - {*ready, *(["keras"] if keras_ok else [])}):
            log.warning("--runtimes: %s is not installed here; skipped", rt)
        keras_ok = keras_ok and "keras" in cfg.runtimes
        ready = [rt for rt in ready if rt in cfg.runtimes]
    jobs = []
    for m in models:
        for f in m["files"]:
            runtimes = (["keras"] if keras_ok else []) if f.endswith(".keras") else \
                [rt for rt in ready if Path(f).suffix in RUNTIMES[rt].suffixes]
            for rt in runtimes:
                for t in cfg.thread_counts:
                    jobs.append({"model": m["role"], "arch": m["arch"], "file": f, "runtime": rt,
                                 "threads": t, "accuracy": t == max(cfg.thread_counts),
                                 "path": str(Path(m["dir"]) / f)})
    if not jobs:
        raise UserError(f"--runtimes {','.join(cfg.runtimes or ())}: none of them is installed here")
    return jobs


def run_job(job: dict, cfg: BenchConfig, tmp: Path, data_file: Path) -> dict:
    pred = tmp / f"{job['model']}-{job['file']}-{job['runtime']}.npy"
    spec = {"model": job["path"], "runtime": job["runtime"], "threads": job["threads"],
            "data": str(data_file), "accuracy": job["accuracy"], "predictions": str(pred), "runs": cfg.runs,
            "min_seconds": cfg.min_seconds, "repeats": cfg.repeats, "warmup": cfg.warmup, "batch": cfg.batch}
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        p = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], env=env,
                           capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT_S} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited {p.returncode}: {last[:200]}"}
    result = json.loads(lines[-1][len(RESULT_TAG):])
    if job["accuracy"] and "error" not in result:
        result["predictions"] = np.load(pred)
    return result


def score(rows: list[dict], models: list[dict], y: np.ndarray, cfg: BenchConfig) -> None:
    """Share accuracy across a file's thread rows; Δ and agreement against the model's Keras row; gate."""
    preds = {(r["model"], r["file"], r["runtime"]): r.pop("predictions") for r in rows if "predictions" in r}
    manifest_acc = {m["role"]: m["keras_test_accuracy"] for m in models}
    for r in rows:
        p = preds.get((r["model"], r["file"], r["runtime"]))
        ref = preds.get((r["model"], KERAS_MODEL, "keras"))
        if p is not None:
            r["accuracy"], r["images"] = float((p == y).mean()), int(len(y))
            r["agreement"] = None if ref is None else float((p == ref).mean())
            base = float((ref == y).mean()) if ref is not None else manifest_acc.get(r["model"])
            r["delta_pp"] = None if base is None else round(100 * (r["accuracy"] - base), 4)
        if r["precision"] != "int8":
            r["gate"] = None
        else:
            ok = (not r.get("error") and r.get("accuracy") is not None and r["accuracy"] >= cfg.min_acc
                  and (r.get("delta_pp") is None or r["delta_pp"] >= -cfg.max_drop))
            r["gate"] = "pass" if ok else "fail"


def layer_tables(models: list[dict], status: dict) -> list[dict]:
    """Per-layer latency of each model's fp32/int8 pair of each format, 1 thread, batch 1."""
    from benchmarks import layers

    out = []
    for m in models:
        for fmt, suffix in FORMATS.items():
            rt = DEFAULT_RUNTIMES[suffix][0]
            f, q = (Path(m["dir"]) / model_file(p, fmt) for p in ("fp32", "int8"))
            if not (f.name in m["files"] and q.name in m["files"]):
                continue
            if status.get(rt, "unavailable").startswith("unavailable"):
                log.warning("--layers: %s is not installed; no per-layer table for %s files", rt, suffix)
                continue
            log.info("per-layer latency: %s %s vs %s", m["role"], f.name, q.name)
            out.append({"model": m["role"]} | layers.compare(f, q, threads=1))
    return out


def run_bench(cfg: BenchConfig) -> dict:
    from train.data import load_mnist

    started = time.perf_counter()
    cfg = replace(cfg, thread_counts=resolve_threads(cfg.threads))
    models = [load_model_dir(Path(cfg.artifacts), "edge")]
    baseline = Path(cfg.baseline or Path(cfg.artifacts) / "baseline")
    if baseline.is_dir() or cfg.baseline:
        models.append(load_model_dir(baseline, "baseline"))
    else:
        log.info("%s: no baseline folder; measuring the edge model only", baseline)
    data = load_mnist(cfg.data)
    for m in models:
        if m["data"] and m["data"].get("sha256", {}).get("x_test") != data.sha256["x_test"]:
            log.warning("%s was exported against a different test set than %s; without a Keras row "
                        "its Δ is not shown", m["dir"], data.source)
            m["keras_test_accuracy"] = None
    device = fingerprint(cfg.name)
    status = {k: v for k, v in device["runtimes"].items() if k in RUNTIMES}
    jobs = plan(models, cfg, status)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mnist-edge-bench-") as tmp:
        data_file = Path(tmp) / "test.npz"
        np.savez(data_file, x_test=data.x_test, y_test=data.y_test)
        for i, job in enumerate(jobs, 1):
            log.info("[%d/%d] %s %s %s, %d thread(s)", i, len(jobs), job["model"], job["file"],
                     job["runtime"], job["threads"])
            result = run_job(job, cfg, Path(tmp), data_file)
            meta = next(m for m in models if m["role"] == job["model"])["files"][job["file"]]
            precision = "int8" if "int8" in job["file"] else "fp32"
            rows.append({k: v for k, v in job.items() if k not in ("path", "accuracy")} | {
                "format": Path(job["file"]).suffix[1:], "precision": precision,
                "size_bytes": meta["bytes"], "sha256": meta["sha256"], **result})
            if result.get("error"):
                log.error("%s %s: %s", job["file"], job["runtime"], result["error"])
    score(rows, models, data.y_test, cfg)
    speed = speed_gate(rows, cfg.require_int8_speedup, cfg.min_acc, cfg.max_drop)
    per_layer = layer_tables(models, status) if cfg.layers else None
    device["temperature_c_end"] = temperature_c()
    passed = all(r["gate"] != "fail" and not r.get("error") for r in rows)
    return {"schema": SCHEMA, "device": device, "data": data.identity(),
            "settings": asdict(cfg) | {"threads": list(cfg.threads)},
            "gate": {"min_acc": cfg.min_acc, "max_drop_pp": cfg.max_drop, "passed": passed},
            "models": {m["role"]: {k: v for k, v in m.items() if k != "data"} for m in models},
            "summary": report.summary(rows), "speed": speed, "layers": per_layer, "rows": rows,
            "seconds": round(time.perf_counter() - started, 1),
            "environment": environment(*VERSIONS)}


def write_outputs(result: dict, out: Path) -> None:
    atomic_write_json(out / "bench.json", result)
    atomic_write_bytes(out / "bench.md", report.markdown_page(result).encode())
    d = result["device"]
    with atomic_path(out / "bench.png") as tmp:
        report.plot(result["rows"], tmp, f"mnist-edge bench: {d['name']} ({d['cpu_model']})")


def get_args_parser() -> argparse.ArgumentParser:
    d = BenchConfig  # every default is the config's
    p = argparse.ArgumentParser("mnist-edge bench", description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=str, default=d.artifacts,
                   help="folder from `mnist-edge export --int8`")
    p.add_argument("--baseline", type=str, default=d.baseline,
                   help="the same for --arch baseline (default: ARTIFACTS/baseline, skipped if absent)")
    p.add_argument("--data", type=str, default=d.data, help="MNIST .npz or IDX folder")
    p.add_argument("--runs", type=int, default=d.runs, help="timed single-image runs per row, at least")
    p.add_argument("--min-seconds", type=float, default=d.min_seconds, help="and at least this long per row")
    p.add_argument("--repeats", type=int, default=d.repeats,
                   help="timed blocks per row (their p50s give the spread)")
    p.add_argument("--batch", type=int, default=d.batch, help="batch size for throughput and accuracy")
    p.add_argument("--threads", type=str, default=",".join(d.threads),
                   help="comma list of thread counts; all = every usable core")
    p.add_argument("--out", type=str, default=d.out, help="output folder (default: the artifacts folder; "
                   "with --compare: the current folder)")
    p.add_argument("--min-acc", type=float, default=d.min_acc, help="gate: int8 accuracy floor (0..1)")
    p.add_argument("--max-drop", type=float, default=d.max_drop,
                   help="gate: most points int8 may lose vs Keras")
    p.add_argument("--runtimes", type=str, default=d.runtimes,
                   help=f"comma list: only these of keras, {', '.join(RUNTIMES)} (default: all)")
    p.add_argument("--name", type=str, default=d.name,
                   help="device name for reports (default: board or host)")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke test: {QUICK['runs']} timed runs, no time floor (overrides --runs, "
                   "--min-seconds, --repeats)")
    p.add_argument("--require-int8-speedup", type=float, default=d.require_int8_speedup, metavar="X",
                   help="exit 1 unless every int8 row is at least X times faster than its fp32 twin "
                   "(same runtime and threads; p50 at batch 1 and img/s at --batch)")
    p.add_argument("--layers", action="store_true",
                   help="also time every layer of each .tflite/.onnx file, int8 beside fp32")
    p.add_argument("--compare", type=str, nargs="+", default=None, metavar="BENCH_JSON",
                   help="merge bench.json files from several devices into one table and plot; no measuring")
    fleet.add_arguments(p)  # --mqtt, --device-id; mqtt:// URLs in --compare gather a fleet
    return p


def main(args: argparse.Namespace) -> int:
    if args.compare:
        return compare(args.compare, Path(args.out or "."))
    for flag, value, low in (("--runs", args.runs, 1), ("--repeats", args.repeats, 1),
                             ("--batch", args.batch, 1), ("--min-seconds", args.min_seconds, 0)):
        if value < low:
            raise UserError(f"{flag} {value}: expected a number ≥ {low}")
    if args.require_int8_speedup is not None and not args.require_int8_speedup > 0:
        raise UserError(f"--require-int8-speedup {args.require_int8_speedup}: expected a ratio > 0, e.g. 1.5")
    if not 0 <= args.min_acc <= 1:
        raise UserError(f"--min-acc {args.min_acc}: expected a fraction between 0 and 1")
    if not args.max_drop >= 0:  # nan too
        raise UserError(f"--max-drop {args.max_drop}: expected a number of points >= 0")
    cfg = BenchConfig(artifacts=args.artifacts, baseline=args.baseline, data=args.data, runs=args.runs,
                      min_seconds=args.min_seconds, repeats=args.repeats, batch=args.batch,
                      threads=tuple(t.strip() for t in args.threads.split(",") if t.strip()),
                      out=args.out, min_acc=args.min_acc, max_drop=args.max_drop, name=args.name,
                      runtimes=tuple(r.strip() for r in args.runtimes.split(",") if r.strip())
                      if args.runtimes else None, require_int8_speedup=args.require_int8_speedup,
                      layers=args.layers)
    if args.quick:
        cfg = replace(cfg, quick=True, **QUICK)
    result = run_bench(cfg)
    out = Path(cfg.out or cfg.artifacts)
    write_outputs(result, out)
    d = result["device"]
    print(f"\n{d['name']} ({d['cpu_model']}, {d['usable_cores']} cores, load {d['load_average']}); "
          f"{result['data']['test_size']} test digits "
          f"[{result['data']['source']}]\n")
    print(report.table(result["rows"]))
    for line in report.summary_lines(result["summary"]) + speed_lines(result["speed"]):
        print(line)
    for c in result["layers"] or []:
        print(f"\nper layer, {c['model']}: " + layers_text(c))
    gate = result["gate"]
    print(f"\ngate (int8 ≥ {100 * gate['min_acc']:.2f} %, Δ ≥ -{gate['max_drop_pp']} pp): "
          f"{'✓ passed' if gate['passed'] else '✗ FAILED'}   ({result['seconds']} s)")
    if cfg.quick:
        print("--quick: a smoke test with a few timed runs; the timings are not measurements")
    print(f"wrote {out / 'bench.json'}, bench.md, bench.png")
    if args.mqtt:
        fleet.publish(args.mqtt, args.device_id, result)
    return 0 if gate["passed"] and result["speed"]["passed"] else 1
