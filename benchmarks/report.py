"""Bench results as a terminal table, a markdown page, an accuracy-vs-latency plot and a summary.

    >>> import json
    >>> from benchmarks.report import table
    >>> print(table(json.load(open("models/bench.json"))["rows"]))      # the shipped model's bench
    model     runtime      prec  thr  acc %   Δ pp  agree %  p50 µs ...
    ...

Every function takes the plain rows of bench.json, so `mnist-edge bench --compare` can draw the
same table and plot from several devices' files.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from benchmarks.speed import speed_lines
from edge.contract import EXPORTED, TFLITE_RUNTIMES

log = logging.getLogger(__name__)

GATE_MARK = {"pass": "✓", "fail": "✗", None: "-"}
MARKERS = {"edge": "o", "baseline": "s"}  # model role -> plot marker
LABEL_OFFSETS = (4, -12, 14, -22, 24, -32)  # points of vertical offset, so close labels do not overlap
LEGEND = ("acc: whole test set; Δ pp and agree: against the same model's Keras float predictions; "
          "p50..max: one `classify()` call on one image, µs; p50 ±%: spread of the medians of the timed "
          "blocks; img/s: `probabilities()` on batches; load: model load, runtime import excluded "
          "(import_ms in bench.json); 1st: first call after load; RSS: peak of the row's own process; "
          "gate: int8 rows only; int8 ×: p50 of the fp32 twin (same runtime, threads) / p50 of the int8 "
          "file, ⚠ when int8 is slower at batch 1 or in img/s. The int8 kernels pick their instructions "
          "from the CPU (Device: int8_instructions): the Arm dot product (asimddp) on a Pi 5's "
          "Cortex-A76, none on a Pi 4's Cortex-A72 (plain NEON); on x86 avx2, VNNI or AMX, so int8 "
          "against fp32 differs from one CPU to the next")


def _num(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def _speedup(row: dict) -> str:
    """int8 rows: how many times faster than the fp32 twin at batch 1 (p50); ⚠ when slower at batch 1
    or in img/s (benchmarks.speed)."""
    s = row.get("int8_speedup")
    if not s:
        return "-"
    return f"{s['p50']:.2f}" + (" ⚠" if row.get("int8_slower") else "")


def _pct(v, digits: int = 2) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}"


def columns(row: dict, device: bool) -> list[str]:
    """One row's cells, in the order of `header()`."""
    lat, thr = row.get("latency_us") or {}, row.get("throughput") or {}
    delta = row.get("delta_pp")
    cells = [row["model"], row["runtime"], row["precision"], str(row["threads"]), _pct(row.get("accuracy")),
             "-" if delta is None else f"{delta:+.2f}", _pct(row.get("agreement")),
             _num(lat.get("p50")), _num(lat.get("p90")), _num(lat.get("p99")), _num(lat.get("max")),
             _num(lat.get("p50_spread_pct")), _num(thr.get("images_per_s"), 0),
             _num(row.get("load_ms")), _num(row.get("first_inference_ms"), 2),
             _num(row.get("peak_rss_mb")), _num(row["size_bytes"] / 1024), GATE_MARK[row.get("gate")],
             _speedup(row)]
    return ([row["device"]] if device else []) + cells


def header(device: bool, batch: int | str = "B") -> list[str]:
    cols = ["model", "runtime", "prec", "thr", "acc %", "Δ pp", "agree %", "p50 µs", "p90 µs", "p99 µs",
            "max µs", "p50 ±%", f"img/s @{batch}", "load ms", "1st ms", "RSS MB", "KiB", "gate", "int8 ×"]
    return (["device"] if device else []) + cols


def _batch(rows: list[dict]) -> int | str:
    sizes = {(r.get("throughput") or {}).get("batch") for r in rows} - {None}
    return sizes.pop() if len(sizes) == 1 else "B"


def table(rows: list[dict], device: bool = False) -> str:
    """Aligned text table; a row that failed shows its error instead of figures."""
    head = header(device, _batch(rows))
    body = [columns(r, device) for r in rows if not r.get("error")]
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(c.rjust(w) if i >= len(head) - 15 else c.ljust(w)
                       for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
             for cells in [head, *body]]
    lines.insert(1, "-" * len(lines[0]))
    for r in rows:
        if r.get("error"):
            lines.append(f"{GATE_MARK[r.get('gate')]} {r['model']} {r['runtime']} {r['file']} "
                         f"threads {r['threads']}: {r['error']}")
    return "\n".join(lines)


def markdown_table(rows: list[dict], device: bool = False) -> str:
    head = header(device, _batch(rows))
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(columns(r, device)) + " |" for r in rows if not r.get("error")]
    out += [f"\n- ✗ {r['model']} {r['runtime']} `{r['file']}`: {r['error']}" for r in rows if r.get("error")]
    return "\n".join(out)


def markdown_page(result: dict) -> str:
    """bench.md: the gate, the table, the edge-vs-baseline summary, a legend and the device."""
    d, gate, env = result["device"], result["gate"], result["environment"]
    quick = ["**--quick: a smoke test with a few timed runs; the timings are not measurements.**", ""] \
        if result["settings"].get("quick") else []
    md = [f"# mnist-edge bench on {d['name']}", "", *quick,
          f"Gate: int8 accuracy ≥ {100 * gate['min_acc']:.2f} % and Δ ≥ -{gate['max_drop_pp']} pp against "
          f"Keras float: **{'passed' if gate['passed'] else 'FAILED'}**. Test set: "
          f"{result['data']['test_size']} digits from `{result['data']['source']}`.", "",
          markdown_table(result["rows"]), "", *[f"{line}  " for line in summary_lines(result["summary"])],
          *[f"{line}  " for line in speed_lines(result.get("speed"))],
          *[f"{line}  " for line in unlisted_lines(result["rows"])],
          *_layers_section(result.get("layers")),
          "", LEGEND, "", "## Device", "", "| | |", "|---|---|",
          *[f"| {k} | {v} |" for k, v in d.items() if k != "runtimes"],
          *[f"| {k} | {v} |" for k, v in d["runtimes"].items()], "",
          f"{result['seconds']} s, {env['created']}, mnist-edge {env['mnist_edge']} "
          f"({env['git_commit']})", ""]
    return "\n".join(md)


def unlisted_lines(rows: list[dict]) -> list[str]:
    """A ⚠ line per measured file whose hash is not the one its folder's manifest lists: the figures
    are of another file than the export made and validated (replaced or edited since)."""
    seen = {(r["model"], r["file"]): r for r in rows
            if r.get("manifest_sha256") and r["manifest_sha256"] != r.get("sha256")}
    return [f"⚠ {model} {file}: not the file its manifest lists (SHA-256 {r['sha256'][:12]}, listed "
            f"{r['manifest_sha256'][:12]}): replaced since its export, so not what was validated"
            for (model, file), r in seen.items()]


def _layers_section(tables: list[dict] | None) -> list[str]:
    """bench --layers: each fp32/int8 pair's per-layer table (benchmarks.layers)."""
    if not tables:
        return []
    from benchmarks.layers import markdown

    out = ["", "## Per-layer latency", "",
           "Each layer's time on this device, fp32 beside int8; ⚠ marks a layer slower in int8."]
    for c in tables:
        out += ["", f"Model: {c['model']}.", "", markdown(c)]
    return out


def _pick(rows, model, runtimes, precision, threads):
    for rt in runtimes:
        for r in rows:
            if (r["model"], r["runtime"], r["precision"], r["threads"]) == (model, rt, precision, threads) \
                    and not r.get("error"):
                return r
    return None


def summary(rows: list[dict]) -> dict | None:
    """Edge against baseline: int8 TFLite p50 speed-up at the fewest threads, batch 1; int8 sizes."""
    if not {"edge", "baseline"} <= {r["model"] for r in rows}:
        return None
    threads = min(r["threads"] for r in rows)
    tfl = TFLITE_RUNTIMES
    edge, base = _pick(rows, "edge", tfl, "int8", threads), _pick(rows, "baseline", tfl, "int8", threads)
    keras = _pick(rows, "baseline", ("keras",), "fp32", threads)

    def speedup(ref):
        return ref["latency_us"]["p50"] / edge["latency_us"]["p50"] if ref and edge else None

    sizes = {f"{m}_{r['file']}": r["size_bytes"] for m in ("edge", "baseline") for r in rows
             if r["model"] == m and r["precision"] == "int8" and r["file"] in EXPORTED}
    return {"threads": threads, "edge_int8_tflite_p50_us": edge and edge["latency_us"]["p50"],
            "speedup_vs_baseline_int8_tflite": speedup(base), "speedup_vs_baseline_keras": speedup(keras),
            "int8_bytes": sizes}


def summary_lines(s: dict | None) -> list[str]:
    if not s:
        return []
    x = lambda v: "-" if v is None else f"{v:.1f}x"  # noqa: E731
    sizes = ", ".join(f"{k.replace('_model_', ' ')} {v / 1024:.1f} KiB" for k, v in s["int8_bytes"].items())
    return [f"edge vs baseline ({s['threads']} thread, batch 1, p50): int8 TFLite is "
            f"{x(s['speedup_vs_baseline_int8_tflite'])} faster than the baseline's int8 TFLite and "
            f"{x(s['speedup_vs_baseline_keras'])} faster than the baseline in Keras",
            f"int8 sizes: {sizes}"]


def write_plot(rows: list[dict], path: Path, title: str, by_device: bool = False) -> bool:
    """`plot()` into `path` (atomically); False, with a warning and no file there, where matplotlib is
    not installed (a device's install): the .json and .md hold every figure the plot shows."""
    from edge.provenance import atomic_path

    if importlib.util.find_spec("matplotlib") is None:
        stale = path.exists()
        path.unlink(missing_ok=True)  # an earlier run's plot would not show these figures
        log.warning("%s not drawn: needs matplotlib, which is not installed (pip install matplotlib)%s",
                    path.name, f"; the earlier {path.name} there was removed" if stale else "")
        return False
    with atomic_path(path) as tmp:
        plot(rows, tmp, title, by_device)
    return True


def plot(rows: list[dict], path: str | Path, title: str, by_device: bool = False) -> None:
    """Accuracy against p50 latency (log x), one point per model x runtime x precision (x device) at
    the fewest threads; colour = runtime and precision (or device), marker = model, size = file size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error") and r.get("accuracy") is not None]
    fewest = {}
    for r in ok:
        fewest[r.get("device")] = min(fewest.get(r.get("device"), r["threads"]), r["threads"])
    points = [r for r in ok if r["threads"] == fewest[r.get("device")]]
    keys = sorted({r["device"] if by_device else f"{r['runtime']} {r['precision']}" for r in points})
    colours = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(keys)}
    biggest = max((r["size_bytes"] for r in points), default=1)
    fig, ax = plt.subplots(figsize=(9, 6), dpi=100)
    points.sort(key=lambda r: r["latency_us"]["p50"])
    for i, r in enumerate(points):
        key = r["device"] if by_device else f"{r['runtime']} {r['precision']}"
        x, y = r["latency_us"]["p50"], 100 * r["accuracy"]
        ax.scatter(x, y, s=40 + 400 * (r["size_bytes"] / biggest) ** 0.5, marker=MARKERS.get(r["model"], "^"),
                   color=colours[key], alpha=0.75, edgecolors="black", linewidths=0.5)
        label = f"{r['model']} {r['runtime']} {r['precision']}"
        ax.annotate(f"{r['device']}: {label}" if by_device else label, (x, y), fontsize=7,
                    xytext=(7, LABEL_OFFSETS[i % len(LABEL_OFFSETS)]), textcoords="offset points")
    for key, c in colours.items():
        ax.scatter([], [], color=c, label=key)
    for model, m in MARKERS.items():
        if any(r["model"] == model for r in points):
            ax.scatter([], [], marker=m, color="grey", label=f"model: {model}")
    ax.margins(x=0.15, y=0.15)
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 single-image latency, µs (log; {'fewest' if by_device else fewest.get(None)} "
                  "thread(s), batch 1)")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(title + "\nmarker size: model size on disk")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
