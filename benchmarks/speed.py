"""The speed gate: is each int8 file faster than its own fp32 twin here, and what should this device run.

    >>> import json
    >>> from benchmarks.speed import speed_gate
    >>> gate = speed_gate(json.load(open("models/bench.json"))["rows"], require=1.5)
    >>> gate["passed"] in (True, False), sorted(gate["recommended"])     # what this device should run
    (True, ['file', 'p50_us', 'runtime', 'threads'])

An int8 row's twin is the fp32 row of the same model, format, runtime and thread count. Two ratios,
each "how many times faster int8 is": p50 of one image (batch 1) and images/s at the bench batch.
Below 1 either way, the row is marked slower; `require` (--require-int8-speedup) is a floor on both.
The recommendation is the fastest single-image row of the edge model that passes the accuracy gate;
the thread note says when more threads are slower than one at batch 1, and why.
"""

from __future__ import annotations

from edge.contract import RUNTIMES

DEVICE_RUNTIMES = tuple(RUNTIMES)  # what a device can run (Keras rows are the reference, not a choice)


def _key(r: dict) -> tuple:
    return r.get("device"), r["model"], r["format"], r["runtime"], r["threads"]


def _ok(r: dict) -> bool:
    return not r.get("error") and bool(r.get("latency_us")) and bool(r.get("throughput"))


def int8_speedups(rows: list[dict]) -> None:
    """Adds `int8_speedup` {"p50", "throughput"} and `int8_slower` to each measured int8 row."""
    fp32 = {_key(r): r for r in rows if r["precision"] == "fp32" and _ok(r)}
    for r in rows:
        twin = fp32.get(_key(r)) if r["precision"] == "int8" and _ok(r) else None
        if twin is None:
            continue
        s = {"p50": twin["latency_us"]["p50"] / r["latency_us"]["p50"],
             "throughput": r["throughput"]["images_per_s"] / twin["throughput"]["images_per_s"]}
        r["int8_speedup"] = {k: round(v, 3) for k, v in s.items()}
        r["int8_slower"] = min(s.values()) < 1.0


def recommend(rows: list[dict], min_acc: float, max_drop: float, model: str = "edge") -> dict | None:
    """The fastest file x runtime x threads at batch 1 among rows that pass the accuracy gate."""
    def passes(r):
        return (r.get("accuracy") is not None and r["accuracy"] >= min_acc
                and (r.get("delta_pp") is None or r["delta_pp"] >= -max_drop))

    acc = {(r["model"], r["file"], r["runtime"]): r for r in rows if r.get("accuracy") is not None}
    pool = [r for r in rows if r["model"] == model and r["runtime"] in DEVICE_RUNTIMES and _ok(r)
            and passes(acc.get((r["model"], r["file"], r["runtime"]), {}))]
    if not pool:
        return None
    best = min(pool, key=lambda r: r["latency_us"]["p50"])
    return {"file": best["file"], "runtime": best["runtime"], "threads": best["threads"],
            "p50_us": round(best["latency_us"]["p50"], 2)}


def thread_notes(rows: list[dict]) -> list[dict]:
    """Rows where more threads are slower than one thread at batch 1."""
    def same(r):
        return r.get("device"), r["model"], r["file"], r["runtime"]

    one = {same(r): r for r in rows if r["threads"] == 1 and _ok(r)}
    notes = []
    for r in rows:
        base = one.get(same(r))
        if r["threads"] > 1 and _ok(r) and base and r["latency_us"]["p50"] > base["latency_us"]["p50"]:
            notes.append({"model": r["model"], "file": r["file"], "runtime": r["runtime"],
                          "threads": r["threads"], "p50_us": round(r["latency_us"]["p50"], 2),
                          "one_thread_p50_us": round(base["latency_us"]["p50"], 2)})
    return notes


def speed_gate(rows: list[dict], require: float | None = None, min_acc: float = 0.99,
               max_drop: float = 0.3) -> dict:
    """bench.json's "speed" section; marks the rows too. passed is False only when `require` is set
    and an int8 row's speed-up (either ratio) is below it."""
    int8_speedups(rows)
    measured = [r for r in rows if "int8_speedup" in r]
    slower = [f"{r['model']} {r['file']} {r['runtime']} {r['threads']} thr"
              for r in measured if r["int8_slower"]]
    below = [] if require is None else [
        f"{r['model']} {r['file']} {r['runtime']} {r['threads']} thr: {min(r['int8_speedup'].values()):.2f}x"
        for r in measured if min(r["int8_speedup"].values()) < require]
    return {"require_int8_speedup": require, "int8_slower_than_fp32": slower, "below_required": below,
            "passed": not below, "recommended": recommend(rows, min_acc, max_drop),
            "more_threads_slower": thread_notes(rows)}


def speed_lines(speed: dict | None) -> list[str]:
    """The terminal and bench.md lines about the speed gate, the recommendation and threads."""
    if not speed:
        return []
    lines = []
    slower = speed["int8_slower_than_fp32"]
    if slower:
        lines.append(f"⚠ int8 slower than its fp32 twin (p50 at batch 1 or img/s): {'; '.join(slower)}")
    else:
        lines.append("int8 is no slower than its fp32 twin in every row measured")
    req = speed["require_int8_speedup"]
    if req is not None:
        lines.append(f"--require-int8-speedup {req}: " + (
            "✓ passed" if speed["passed"] else f"✗ FAILED ({'; '.join(speed['below_required'])})"))
    rec = speed["recommended"]
    lines.append("recommended here: " + (
        f"{rec['file']} in {rec['runtime']}, {rec['threads']} thread(s) ({rec['p50_us']:.1f} µs p50, "
        "the fastest single-image row that passes the accuracy gate)" if rec
        else "none (no row of the edge model passes the accuracy gate)"))
    notes = speed["more_threads_slower"]
    if notes:
        n = ", ".join(f"{x['file']} {x['runtime']} {x['threads']} thr {x['p50_us']:.1f} vs "
                      f"{x['one_thread_p50_us']:.1f} µs" for x in notes)
        lines.append(f"more threads are slower than one at batch 1 ({n}): a single digit is too little "
                     "work to split, so waking and joining a second thread costs more than it saves; "
                     "use --threads 1 for one digit at a time, more threads only for batches")
    return lines
