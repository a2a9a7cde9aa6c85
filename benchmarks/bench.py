"""`mnist-edge bench`: accuracy against latency for every exported file in every installed runtime.

    mnist-edge bench                                   # artifacts/ (and artifacts/baseline/ if there)
    mnist-edge bench --artifacts runs/a --threads 1,4 --runs 2000 --min-seconds 5
    mnist-edge bench --compare pi5/bench.json laptop/bench.json --out cmp

Rows are model (edge, baseline) x file (model.keras, model_{fp32,int8}.{tflite,onnx}) x runtime
(Keras, LiteRT, tflite-runtime, onnxruntime: those that import here) x threads. Each row runs in a
fresh process (benchmarks.worker) through the same `edge.Classifier` a device uses; which rows, and
how each is run and scored, is benchmarks/jobs.py. Accuracy is measured once per file x runtime on
the whole test set, against the Keras float model. Writes
bench.json (schema mnist-edge/bench/1), bench.md and bench.png; exits 1 when an int8 file is below
--min-acc or loses more than --max-drop points.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmarks import fleet, report
from benchmarks.compare import SCHEMA, compare
from benchmarks.device import fingerprint, temperature_c
from benchmarks.jobs import load_model_dir, plan, resolve_threads, run_job, score
from benchmarks.layers import text as layers_text
from benchmarks.speed import speed_gate, speed_lines
from edge.contract import BENCH_REPORTS, DEFAULT_RUNTIMES, FORMATS, RUNTIMES, model_file
from edge.errors import UserError
from edge.provenance import atomic_write_bytes, atomic_write_json, check_out_dir, environment

log = logging.getLogger(__name__)
VERSIONS = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu", "keras", "openvino",
            "matplotlib")


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
                "size_bytes": meta["bytes"], "sha256": meta["sha256"],
                "manifest_sha256": meta["manifest_sha256"], **result})
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


def write_outputs(result: dict, out: Path) -> list[str]:
    """BENCH_REPORTS in `out` (bench.png with matplotlib only): the names written."""
    data, page, plot = BENCH_REPORTS
    atomic_write_json(out / data, result)
    atomic_write_bytes(out / page, report.markdown_page(result).encode())
    d = result["device"]
    title = f"mnist-edge bench: {d['name']} ({d['cpu_model']})"
    drawn = report.write_plot(result["rows"], out / plot, title)
    return [data, page] + [plot] * drawn


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


def config(args: argparse.Namespace) -> BenchConfig:
    """The settings the flags ask for (no flags: BenchConfig's defaults)."""
    cfg = BenchConfig(artifacts=args.artifacts, baseline=args.baseline, data=args.data, runs=args.runs,
                      min_seconds=args.min_seconds, repeats=args.repeats, batch=args.batch,
                      threads=tuple(t.strip() for t in args.threads.split(",") if t.strip()),
                      out=args.out, min_acc=args.min_acc, max_drop=args.max_drop, name=args.name,
                      runtimes=tuple(r.strip() for r in args.runtimes.split(",") if r.strip())
                      if args.runtimes else None, require_int8_speedup=args.require_int8_speedup,
                      layers=args.layers)
    return replace(cfg, quick=True, **QUICK) if args.quick else cfg


def main(args: argparse.Namespace) -> int:
    if args.device_id is not None and not args.mqtt:  # would be silently ignored
        raise UserError(f"--device-id {args.device_id}: only used when publishing; add --mqtt URL")
    if args.compare:
        unused = [a.option_strings[0] for a in get_args_parser()._actions if a.option_strings
                  and a.dest not in ("compare", "out", "help") and getattr(args, a.dest) != a.default]
        if unused:  # said, not ignored: --compare merges files and measures nothing
            raise UserError(f"{unused[0]}: not used with --compare, which measures nothing (it merges "
                            "bench.json files)")
        return compare(args.compare, Path(args.out or "."))
    if args.runtimes is not None and not args.runtimes.replace(",", "").strip():
        raise UserError(f"--runtimes {args.runtimes!r}: expected a comma list of keras, "
                        f"{', '.join(RUNTIMES)}")
    for flag, value, low in (("--runs", args.runs, 1), ("--repeats", args.repeats, 1),
                             ("--batch", args.batch, 1), ("--min-seconds", args.min_seconds, 0)):
        if not value >= low or value == float("inf"):  # nan fails the comparison too
            raise UserError(f"{flag} {value}: expected a finite number ≥ {low}")
    if args.require_int8_speedup is not None and not args.require_int8_speedup > 0:
        raise UserError(f"--require-int8-speedup {args.require_int8_speedup}: expected a ratio > 0, e.g. 1.5")
    if not 0 <= args.min_acc <= 1:
        raise UserError(f"--min-acc {args.min_acc}: expected a fraction between 0 and 1")
    if not args.max_drop >= 0:  # nan too
        raise UserError(f"--max-drop {args.max_drop}: expected a number of points >= 0")
    cfg = config(args)
    out = Path(cfg.out or cfg.artifacts)
    if cfg.out:  # before the measuring, not after it (the artifacts folder is checked as it loads)
        check_out_dir(cfg.out)
    elif Path(cfg.artifacts).is_dir():  # the reports go there: a read-only copy of an export
        try:
            check_out_dir(cfg.artifacts, "--artifacts")
        except UserError as e:
            raise UserError(f"{e}; bench writes its reports there unless --out names another folder") \
                from None
    if args.mqtt:  # the broker too
        fleet.reachable(args.mqtt, args.device_id)
    result = run_bench(cfg)
    written = write_outputs(result, out)
    d = result["device"]
    print(f"\n{d['name']} ({d['cpu_model']}, {d['usable_cores']} cores, load {d['load_average']}); "
          f"{result['data']['test_size']} test digits "
          f"[{result['data']['source']}]\n")
    print(report.table(result["rows"]))
    for line in report.summary_lines(result["summary"]) + speed_lines(result["speed"]) \
            + report.unlisted_lines(result["rows"]):
        print(line)
    for c in result["layers"] or []:
        print(f"\nper layer, {c['model']}: " + layers_text(c))
    gate = result["gate"]
    print(f"\ngate (int8 ≥ {100 * gate['min_acc']:.2f} %, Δ ≥ -{gate['max_drop_pp']} pp): "
          f"{'✓ passed' if gate['passed'] else '✗ FAILED'}   ({result['seconds']} s)")
    if cfg.quick:
        print("--quick: a smoke test with a few timed runs; the timings are not measurements")
    print(f"wrote {out / written[0]}, {', '.join(written[1:])}")
    if args.mqtt:
        fleet.publish(args.mqtt, args.device_id, result)
    return 0 if gate["passed"] and result["speed"]["passed"] else 1
