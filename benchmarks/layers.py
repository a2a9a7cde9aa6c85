"""Per-layer latency on this device, int8 beside fp32, so a user sees which layer loses.

    python -m benchmarks.layers artifacts/model_fp32.tflite artifacts/model_int8.tflite
    mnist-edge bench --layers          # the same for every .tflite/.onnx pair, into bench.{json,md}

TFLite (LiteRT, XNNPACK as a device runs it): the file is cut after each op into prefix models
(the flatbuffer's op list truncated, so nothing is re-converted and no TensorFlow is needed), each
prefix is timed with one thread at batch 1, and an op's time is its prefix's time minus the previous
one; the first op carries the interpreter's per-call cost. Prefixes are timed in interleaved blocks
and each keeps its fastest block median, so a noisy neighbour shifts them all alike; the last prefix
is the whole file, so when the two disagree by more than AGREE the noise was uneven, and all are timed
again.
ONNX (onnxruntime): the session's own profiler, mean kernel time per node over the timed runs; what
the nodes do not account for (session and Python overhead) is shown as its own line.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BLOCKS = 12          # interleaved timing blocks per TFLite prefix (the fastest median is kept)
BLOCK_RUNS = 150     # invocations per block
AGREE = 0.15         # the full-length prefix and the file itself must time within this share of each
RETIMES = 3          # other (they do the same work), or every prefix is timed again, up to this often
ORT_RUNS = 2000      # profiled onnxruntime runs
NORMAL = {"QLinearConv": "Conv", "ConvInteger": "Conv", "QLinearMatMul": "MatMul", "QGemm": "Gemm",
          "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearAdd": "Add",
          "QLinearSoftmax": "Softmax"}  # int8 ONNX kernels -> the float op they replace


def _block_median(fn, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t)
    return float(np.median(ts)) / 1e3


def _interpreter(content: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.zeros(d["shape"], d["dtype"])
    idx = d["index"]

    def run():
        it.set_tensor(idx, x)
        it.invoke()
    return run


def tflite_layers(path: str | Path, threads: int = 1) -> dict:
    """{"ops": [{"op", "name", "shape", "us"}], "whole_us", "sum_us"} by prefix models of the file."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    raw = Path(path).read_bytes()
    model = fb.read_model_from_bytearray(bytearray(raw))
    sg = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    prefixes = []
    for k, op in enumerate(sg.operators):
        code = fb.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
        t = sg.tensors[op.outputs[0]]
        ops.append({"op": names.get(code, str(code)), "name": (t.name or b"").decode() if isinstance(
            t.name, bytes) else str(t.name), "shape": [int(s) for s in t.shape][1:]})
        cut = copy.deepcopy(model)
        cut.subgraphs[0].operators = cut.subgraphs[0].operators[:k + 1]
        cut.subgraphs[0].outputs = [op.outputs[0]]
        cut.signatureDefs = []
        prefixes.append(bytes(fb.convert_object_to_bytearray(cut)))
    runs = [_interpreter(p, threads) for p in prefixes] + [_interpreter(raw, threads)]
    for run in runs:
        for _ in range(50):
            run()
    for attempt in range(1, RETIMES + 1):
        best = [float("inf")] * len(runs)
        for _ in range(BLOCKS):
            for i, run in enumerate(runs):
                best[i] = min(best[i], _block_median(run, BLOCK_RUNS))
        if abs(best[-2] / best[-1] - 1) <= AGREE:  # the full-length prefix is the file: same work
            break
        log.info("%s: its full-length prefix took %.1f us and the file %.1f: noise, timed again (%d/%d)",
                 Path(path).name, best[-2], best[-1], attempt, RETIMES)
    prev = 0.0
    for o, t in zip(ops, best[:-1], strict=True):
        o["us"] = round(t - prev, 3)
        prev = t
    return {"runtime": "litert", "method": "prefix models (op list cut after each op), XNNPACK",
            "threads": threads, "ops": ops, "sum_us": round(best[-2], 3), "whole_us": round(best[-1], 3)}


def onnx_layers(path: str | Path, threads: int = 1, runs: int = ORT_RUNS) -> dict:
    """{"ops": [...], "whole_us", "sum_us"} from onnxruntime's profiler (mean per run)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        i = sess.get_inputs()[0]
        x = np.zeros([1, *i.shape[1:]], np.float32 if "float" in i.type else np.int8)
        for _ in range(100):
            sess.run(None, {i.name: x})
        t0 = time.perf_counter_ns()
        for _ in range(runs):
            sess.run(None, {i.name: x})
        wall = (time.perf_counter_ns() - t0) / 1e3 / runs
        events = json.loads(Path(sess.end_profiling()).read_text())
    per, order, model_run = {}, [], []
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            model_run.append(e["dur"])
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name = e["name"][:-len("_kernel_time")]
        if name not in per:
            order.append(name)
            per[name] = {"op": e["args"].get("op_name", "?"), "name": name, "durs": [],
                         "shape": _shape(e["args"].get("output_type_shape"))}
        per[name]["durs"].append(e["dur"])
    kept = model_run[-runs:] if len(model_run) >= runs else model_run
    ops = []
    for name in order:
        d = per[name]["durs"][-len(kept):] if kept else per[name]["durs"]
        ops.append({k: v for k, v in per[name].items() if k != "durs"} | {"us": round(float(np.mean(d)), 3)})
    total = sum(o["us"] for o in ops)
    return {"runtime": "onnxruntime", "method": "onnxruntime session profiling (kernel time per node)",
            "threads": threads, "ops": ops, "sum_us": round(total, 3),
            "whole_us": round(float(np.mean(kept)), 3) if kept else None, "python_call_us": round(wall, 3)}


def _shape(types) -> list:
    try:
        return list(next(iter(types[0].values())))[1:]
    except (TypeError, IndexError, StopIteration, AttributeError):
        return []


def measure(path: str | Path, threads: int = 1) -> dict:
    return tflite_layers(path, threads) if str(path).endswith(".tflite") else onnx_layers(path, threads)


def pair(fp32: dict, int8: dict) -> list[dict]:
    """Rows of the side-by-side table: ops matched by (normalised) type in order; an op only one file
    has (QUANTIZE, DEQUANTIZE...) gets a row of its own."""
    a = [NORMAL.get(o["op"], o["op"]) for o in fp32["ops"]]
    b = [NORMAL.get(o["op"], o["op"]) for o in int8["ops"]]
    rows = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [{"fp32": fp32["ops"][i], "int8": int8["ops"][j]} for i, j in
                     zip(range(i1, i2), range(j1, j2), strict=True)]
        else:
            rows += [{"fp32": fp32["ops"][i], "int8": None} for i in range(i1, i2)]
            rows += [{"fp32": None, "int8": int8["ops"][j]} for j in range(j1, j2)]
    return rows


def compare(fp32_path: str | Path, int8_path: str | Path, threads: int = 1) -> dict:
    f, q = measure(fp32_path, threads), measure(int8_path, threads)
    return {"fp32_file": Path(fp32_path).name, "int8_file": Path(int8_path).name, "runtime": f["runtime"],
            "method": f["method"], "threads": threads, "fp32": f, "int8": q, "rows": pair(f, q)}


def _us(o: dict | None) -> str:
    return "-" if o is None else f"{o['us']:.1f}"


def markdown(c: dict) -> str:
    """One file pair's table: a row per layer, the sum, and the whole model timed on its own."""
    out = [f"### {c['fp32_file']} vs {c['int8_file']} ({c['runtime']}, {c['threads']} thread, batch 1)", "",
           f"Method: {c['method']}.", "",
           "| # | op (fp32 / int8) | output | fp32 µs | int8 µs | int8 × |", "|---|---|---|---|---|---|"]
    for k, r in enumerate(c["rows"]):
        f, q = r["fp32"], r["int8"]
        ops = " / ".join(dict.fromkeys(o["op"] for o in (f, q) if o))
        shape = "x".join(map(str, (f or q)["shape"]))
        ratio = f"{f['us'] / q['us']:.2f}" + (" ⚠" if f["us"] < q["us"] else "") \
            if f and q and q["us"] > 0 and f["us"] > 0 else "-"
        out.append(f"| {k} | {ops} | {shape} | {_us(f)} | {_us(q)} | {ratio} |")
    f, q = c["fp32"], c["int8"]
    out.append(f"| | **sum of layers** | | {f['sum_us']:.1f} | {q['sum_us']:.1f} | "
               f"{f['sum_us'] / q['sum_us']:.2f} |")
    out.append(f"| | **whole model** | | {f['whole_us']:.1f} | {q['whole_us']:.1f} | "
               f"{f['whole_us'] / q['whole_us']:.2f} |")
    if c["runtime"] == "onnxruntime":
        out += ["", "The whole-model line is the profiler's own `model_run` time; the difference from the "
                "sum is the session's work between kernels (and the profiler's), outside any node. One "
                f"`session.run` from Python took {f['python_call_us']:.1f} / {q['python_call_us']:.1f} µs "
                "with the profiler on."]
    return "\n".join(out)


def text(c: dict) -> str:
    """The same table for a terminal."""
    lines = [f"{c['fp32_file']} vs {c['int8_file']} ({c['runtime']}, {c['threads']} thread, batch 1)",
             f"  {'#':>2}  {'op':<34} {'output':<10} {'fp32 µs':>8} {'int8 µs':>8} {'int8 ×':>7}"]
    for k, r in enumerate(c["rows"]):
        f, q = r["fp32"], r["int8"]
        ops = " / ".join(dict.fromkeys(o["op"] for o in (f, q) if o))[:34]
        shape = "x".join(map(str, (f or q)["shape"]))
        ratio = f"{f['us'] / q['us']:.2f}" + ("⚠" if f["us"] < q["us"] else "") \
            if f and q and q["us"] > 0 and f["us"] > 0 else "-"
        lines.append(f"  {k:>2}  {ops:<34} {shape:<10} {_us(f):>8} {_us(q):>8} {ratio:>7}")
    f, q = c["fp32"], c["int8"]
    lines.append(f"      {'sum of layers':<45} {f['sum_us']:>8.1f} {q['sum_us']:>8.1f}")
    lines.append(f"      {'whole model':<45} {f['whole_us']:>8.1f} {q['whole_us']:>8.1f}")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python -m benchmarks.layers", description=__doc__.splitlines()[0])
    p.add_argument("fp32", type=str, help="model_fp32.tflite or model_fp32.onnx")
    p.add_argument("int8", type=str, help="the int8 file of the same format")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads")
    p.add_argument("--json", type=str, default=None, help="also write the figures to this JSON file")
    return p


def main(args: argparse.Namespace) -> int:
    from edge.contract import MODEL_SUFFIXES
    from edge.errors import UserError

    for f in (args.fp32, args.int8):
        if not Path(f).is_file() or Path(f).suffix not in MODEL_SUFFIXES:
            raise UserError(f"{f}: expected an existing {' or '.join(MODEL_SUFFIXES)} file")
    if Path(args.fp32).suffix != Path(args.int8).suffix:
        raise UserError(f"{args.fp32}, {args.int8}: expected two files of the same format")
    if args.threads < 1:
        raise UserError(f"--threads {args.threads}: expected 1 or more")
    from edge.backends import open_backend

    for f in (args.fp32, args.int8):
        open_backend(f, None, 1)  # a file no runtime here loads (cut short, not a model): its one line
    if args.json:
        json_path = Path(args.json)
        if json_path.is_dir() or not json_path.parent.is_dir():
            raise UserError(f"--json {args.json}: expected a file name in an existing folder")
    c = compare(args.fp32, args.int8, args.threads)
    print(text(c))
    if args.json:
        from edge.provenance import atomic_write_json

        atomic_write_json(Path(args.json), c)
    return 0


if __name__ == "__main__":
    import sys

    from edge.cli import script

    sys.exit(script("benchmarks.layers"))
