"""`mnist-edge bench --compare`: several devices' bench.json files in one table and one plot.

    mnist-edge bench --compare pi4/bench.json pi5/bench.json laptop/bench.json --out cmp
    mnist-edge bench --compare mqtt://broker.lan --out cmp   # every device's retained result
    # -> cmp/compare.{json,md,png}; nothing is measured

Each row is tagged with its device's name from the file's fingerprint (made unique with #2, #3 when
two files carry the same name).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from benchmarks import report
from edge.errors import UserError, missing
from edge.provenance import atomic_write_bytes, atomic_write_json, check_out_dir

log = logging.getLogger(__name__)
SCHEMA = "mnist-edge/bench/1"
ROW_KEYS = ("model", "runtime", "precision", "threads", "file", "size_bytes")
# what each row field must be for the table and the plot (None is allowed where a row has no figure)
_STR, _NUM, _NONE = (str,), (int, float), (type(None),)
ROW_TYPES = {"model": _STR, "runtime": _STR, "precision": _STR, "file": _STR, "threads": (int,),
             "size_bytes": _NUM, "accuracy": _NUM + _NONE, "delta_pp": _NUM + _NONE,
             "agreement": _NUM + _NONE, "load_ms": _NUM + _NONE, "first_inference_ms": _NUM + _NONE,
             "peak_rss_mb": _NUM + _NONE, "latency_us": (dict, *_NONE), "throughput": (dict, *_NONE),
             "gate": _STR + _NONE, "error": _STR + _NONE}
FIGURES = ("p50", "p90", "p99", "max", "p50_spread_pct", "images_per_s", "batch")  # in latency_us, throughput


def _bad_field(rows: list[dict]) -> str | None:
    """The first row field of the wrong type, as 'rows[i].field is a T', or None."""
    for i, r in enumerate(rows):
        for k, types in ROW_TYPES.items():
            v = r.get(k)
            if (k in r or k in ROW_KEYS) and (not isinstance(v, types) or isinstance(v, bool)):
                return f"rows[{i}].{k} is a {type(v).__name__}"
            if isinstance(v, dict) and not all(isinstance(v.get(f), _NUM + _NONE) and not isinstance(
                    v.get(f), bool) for f in FIGURES):
                return f"rows[{i}].{k} holds a figure that is not a number"
        if r.get("gate") not in report.GATE_MARK:
            return f"rows[{i}].gate is {r.get('gate')!r}"
    return None


def load_bench(path: Path) -> dict:
    """A bench.json, or a one-line UserError naming the file and what is wrong with it."""
    try:
        result = json.loads(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: {missing(path)} (expected a bench.json from mnist-edge bench)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable bench.json ({e.__class__.__name__}: {e})") from None
    return check_bench(result, path)


def check_bench(result, name) -> dict:
    """`result` if it looks like mnist-edge bench output, else a UserError naming `name` (a file or topic)."""
    if not isinstance(result, dict) or result.get("schema") != SCHEMA:
        found = result.get("schema") if isinstance(result, dict) else type(result).__name__
        raise UserError(f"{name}: schema {found!r}, expected {SCHEMA!r}")
    rows = result.get("rows")
    if not isinstance(rows, list) or not isinstance(result.get("device"), dict) or not all(
            isinstance(r, dict) and all(k in r for k in ROW_KEYS) for r in rows):
        raise UserError(f"{name}: missing or malformed 'device' or 'rows' (expected mnist-edge bench output)")
    if not rows:  # bench writes at least one: an empty list would merge into an empty comparison
        raise UserError(f"{name}: no rows, nothing to compare (mnist-edge bench writes one per file, "
                        "runtime and thread count)")
    bad = _bad_field(rows)
    if bad is None and not isinstance(result["device"].get("name", ""), (str, type(None))):
        bad = f"device.name is a {type(result['device']['name']).__name__}"
    for part in ("data", "gate", "settings"):
        if bad is None and not isinstance(result.get(part, {}), dict):
            bad = f"{part} is a {type(result[part]).__name__}"
    if bad:
        raise UserError(f"{name}: {bad}, not what mnist-edge bench writes")
    return result


def merge(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """All rows, each tagged with a unique device name; and the devices' fingerprints."""
    rows, devices, seen = [], [], {}
    for res in results:
        name = str(res["device"].get("name") or "unknown")
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        devices.append(res["device"] | {"name": name, "test_size": res.get("data", {}).get("test_size"),
                                        "gate_passed": res.get("gate", {}).get("passed"),
                                        "quick": bool(res.get("settings", {}).get("quick"))})
        rows += [r | {"device": name} for r in res["rows"]]
    return rows, devices


def compare(paths: list[str | Path], out: Path) -> int:
    """bench.json files and mqtt:// fleets (benchmarks.fleet) -> compare.{json,md,png} in `out`."""
    from benchmarks.fleet import load_sources

    paths, results = load_sources([str(p) for p in paths])
    rows, devices = merge(results)
    sources = {r.get("data", {}).get("source") for r in results}
    if len({r.get("data", {}).get("sha256", {}).get("x_test") for r in results}) > 1:
        log.warning("the files were measured on different test sets (%s): accuracies are not comparable",
                    ", ".join(map(str, sources)))
    merged = {"schema": "mnist-edge/bench-compare/1", "files": list(map(str, paths)), "devices": devices,
              "rows": rows}
    md = ["# mnist-edge bench: devices compared", "", report.markdown_table(rows, device=True), "",
          "| device | CPU | cores | arch | governor | temperature °C | load | quick | gate |",
          "|" + "---|" * 9]
    md += [f"| {d['name']} | {d.get('cpu_model')} | {d.get('usable_cores')} | {d.get('arch')} | "
           f"{d.get('cpu_governor')} | {d.get('temperature_c')} | {d.get('load_average')} | {d['quick']} | "
           f"{report.GATE_MARK['pass' if d['gate_passed'] else 'fail']} |" for d in devices]
    text = report.table(rows, device=True)  # everything is formatted before anything is written
    check_out_dir(out)
    atomic_write_json(out / "compare.json", merged)
    atomic_write_bytes(out / "compare.md", ("\n".join(md) + "\n").encode())
    drawn = report.write_plot(rows, out / "compare.png",
                              f"mnist-edge bench: {', '.join(d['name'] for d in devices)}", by_device=True)
    print(text)
    print(f"\nwrote {out / 'compare.json'}, compare.md" + ", compare.png" * drawn)
    return 0
