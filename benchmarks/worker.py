"""One measurement in a fresh process, so its peak RSS and load time belong to that runtime alone.

    python -m benchmarks.worker '{"model": "artifacts/model_int8.tflite", "runtime": "litert",
        "threads": 1, "data": "/tmp/test.npz", "accuracy": true, "runs": 200, "min_seconds": 0,
        "repeats": 5, "warmup": 20, "batch": 256}'

The result is one JSON line on stdout, prefixed with `RESULT_TAG`. Every .tflite/.onnx row is timed
through the same `edge.Classifier` users call: `classify()` on one image for latency,
`probabilities()` on a batch for throughput and accuracy. The Keras row (runtime "keras") times the
float model's `predict_on_batch` on `train.data.preprocess`ed input, preprocessing included.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time

import numpy as np

RESULT_TAG = "BENCH-RESULT "


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    Linux's VmHWM first: ru_maxrss survives execve, so a child would inherit its parent's peak."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def import_runtime(spec: dict) -> None:
    """Import the runtime on its own, so its cost is not counted as the model's load time."""
    if spec["runtime"] == "keras":
        import tensorflow as tf  # threads must be set before TensorFlow runs anything

        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras  # noqa: F401
    else:
        from edge.backends import import_runtime

        import_runtime(spec["runtime"])


class KerasModel:
    """The float reference with the two calls the timing needs, like a Classifier's."""

    def __init__(self, path: str):
        import keras

        from train.data import preprocess
        from train.model import custom_objects

        self._preprocess = preprocess
        self.model = keras.models.load_model(path, compile=False, custom_objects=custom_objects())

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(self._preprocess(images)))

    def classify(self, images: np.ndarray) -> np.ndarray:
        return self.probabilities(images).argmax(axis=1)


def open_model(spec: dict):
    if spec["runtime"] == "keras":
        return KerasModel(spec["model"])
    from edge.classifier import Classifier

    return Classifier(spec["model"], spec["runtime"], spec["threads"])


def latency(clf, images: np.ndarray, runs: int, min_seconds: float, repeats: int, warmup: int) -> dict:
    """Single-image classify() latency: `repeats` timed blocks, each >= runs/repeats calls and
    >= min_seconds/repeats seconds, cycling through real test digits. Percentiles over all calls;
    the spread is how far the blocks' medians differ (max - min, as % of their median)."""
    n = len(images)
    for i in range(warmup):
        clf.classify(images[i % n: i % n + 1])
    per_block, block_s = max(1, -(-runs // repeats)), min_seconds / repeats
    times, medians, i = [], [], 0
    for _ in range(repeats):
        block = []
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            while len(block) < per_block or time.perf_counter() - start < block_s:
                j = i % n
                t0 = time.perf_counter_ns()
                clf.classify(images[j:j + 1])
                block.append(time.perf_counter_ns() - t0)
                i += 1
        finally:
            gc.enable()
        medians.append(float(np.median(block)) / 1e3)
        times.extend(block)
    us = np.asarray(times, dtype=np.float64) / 1e3
    p50, p90, p99 = (float(v) for v in np.percentile(us, [50, 90, 99]))
    mid = float(np.median(medians))
    return {"p50": p50, "p90": p90, "p99": p99, "max": float(us.max()), "mean": float(us.mean()),
            "runs": int(len(us)), "repeats": repeats, "block_p50s": [round(m, 2) for m in medians],
            "p50_spread_pct": 100 * (max(medians) - min(medians)) / mid if mid else 0.0}


def throughput(clf, images: np.ndarray, batch: int, min_seconds: float, min_batches: int = 3) -> dict:
    """Images per second from probabilities() on batches of `batch` digits, after one warm-up batch."""
    batch = min(batch, len(images))
    starts = list(range(0, len(images) - batch + 1, batch))
    clf.probabilities(images[:batch])
    done, k = 0, 0
    gc.collect()
    start = time.perf_counter()
    while done < min_batches or time.perf_counter() - start < min_seconds:
        s = starts[k % len(starts)]
        clf.probabilities(images[s:s + batch])
        done, k = done + 1, k + 1
    seconds = time.perf_counter() - start
    return {"batch": batch, "batches": done, "images_per_s": done * batch / seconds}


def measure(spec: dict) -> dict:
    with np.load(spec["data"]) as d:
        x, y = d["x_test"], d["y_test"]
    out = {"rss_before_mb": peak_rss_mb()}
    t0 = time.perf_counter()
    import_runtime(spec)
    t1 = time.perf_counter()
    clf = open_model(spec)
    t2 = time.perf_counter()
    clf.classify(x[:1])
    t3 = time.perf_counter()
    out |= {"import_ms": 1e3 * (t1 - t0), "load_ms": 1e3 * (t2 - t1), "first_inference_ms": 1e3 * (t3 - t2)}
    if spec["accuracy"]:
        b = spec["batch"]
        pred = np.concatenate([clf.probabilities(x[i:i + b]).argmax(1) for i in range(0, len(x), b)])
        np.save(spec["predictions"], pred.astype(np.uint8))
        out["accuracy"] = float((pred == y).mean())
        out["images"] = int(len(y))
    out["latency_us"] = latency(clf, x, spec["runs"], spec["min_seconds"], spec["repeats"], spec["warmup"])
    out["throughput"] = throughput(clf, x, spec["batch"], spec["min_seconds"] / 2)
    out["peak_rss_mb"] = peak_rss_mb()
    out["runtime_rss_mb"] = out["peak_rss_mb"] - out["rss_before_mb"]
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edge.errors import UserError

    try:
        result = measure(spec)
    except UserError as e:
        result = {"error": str(e)}
    except Exception as e:  # a runtime that crashes on this model is a result, not a bench crash
        result = {"error": f"{e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
