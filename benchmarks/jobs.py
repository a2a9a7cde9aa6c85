"""The rows of a bench: which to measure, measuring each in a fresh worker, and scoring them.

`load_model_dir` reads an exported folder (refusing an incomplete export or a model that breaks the
contract), `plan` makes one job per model x file x runtime x threads, `run_job` runs a job in
`python -m benchmarks.worker`, so its memory and load time are that runtime's alone, and `score`
adds accuracy, Δ against the Keras float row and the int8 gate to the rows.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.device import usable_cores
from benchmarks.worker import RESULT_TAG
from edge.backends import MAX_THREADS, default_runtime
from edge.classifier import Classifier
from edge.contract import (
    EXPORTED,
    KERAS_MODEL,
    MANIFEST,
    RUNTIMES,
    hash_files,
    incomplete_export,
    read_manifest,
)
from edge.errors import UserError
from train.model import check_archive

if TYPE_CHECKING:
    from benchmarks.bench import BenchConfig

log = logging.getLogger(__name__)
FILES = (KERAS_MODEL, *EXPORTED)  # what a bench measures in an exported folder
WORKER_TIMEOUT_S = 900  # one row's worker process, at most


def resolve_threads(spec) -> list[int]:
    """--threads as thread counts, each once. A count given twice is refused (a typo, or rows asked
    for twice); 'all' that comes to a count also given (1,all on one core) is measured once."""
    out, given = [], []
    for t in spec:
        t = str(t).strip()
        if t == "all":
            n = usable_cores()
        elif t.isdigit() and 0 < int(t) <= MAX_THREADS:
            n = int(t)
        else:
            raise UserError(f"--threads {','.join(map(str, spec))}: expected integers from 1 to "
                            f"{MAX_THREADS}, or 'all'")
        if (t if t == "all" else n) in given:
            raise UserError(f"--threads {','.join(map(str, spec))}: {t} is given twice; expected each "
                            "thread count once, e.g. 1,all")
        given.append(t if t == "all" else n)
        if n not in out:
            out.append(n)
    if not out:
        raise UserError("--threads: expected at least one thread count, e.g. 1,all")
    return out


def load_model_dir(folder: Path, role: str) -> dict:
    """The files a bench can measure in one exported folder, with their manifest's provenance."""
    flag, made = ("--artifacts" if role == "edge" else "--baseline"), "`mnist-edge export --int8`"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder}: a file, expected a folder (the output of {made})")
    if not folder.is_dir():
        raise UserError(f"{flag} {folder}: no such folder (expected the output of {made}; "
                        "the shipped models: --artifacts models --out a new folder)")
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
    source = (manifest.get("source_model") or {}).get("sha256")
    if KERAS_MODEL in files and source and files[KERAS_MODEL]["sha256"] != source:  # retrained since
        log.warning("%s: not the model the files here were exported from (its SHA-256 differs from %s's "
                    "source_model): left out, and Δ is against the Keras accuracy %s records; export "
                    "again to measure against it", folder / KERAS_MODEL, MANIFEST, MANIFEST)
        del files[KERAS_MODEL]
    return {"role": role, "dir": str(folder), "arch": manifest.get("arch", role), "files": files,
            "keras_test_accuracy": manifest.get("keras_test_accuracy"), "data": manifest.get("data")}


def _check_loads(path: Path) -> None:
    """A model file that cannot load is the user's to fix: one line, exit 2, before anything is measured."""
    if path.suffix == ".keras":
        check_archive(path, str(path))
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
