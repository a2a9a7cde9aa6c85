"""The camera pipeline's speed per frame: to_grey, segment and classify on synthetic 640x480 frames.

    python -m benchmarks.frames                                    # shipped models/model_int8.tflite
    python -m benchmarks.frames --model artifacts/model_int8.onnx --frames 500

Frames of 1 to 4 MNIST test digits on unevenly lit, noisy paper (tests/synthetic.py) are made first,
untimed; each is then run through exactly what `mnist-edge camera` runs per frame (to_grey -> segment
-> one batched Classifier call), with one interpreter thread and, by default, one OpenCV thread.
Prints p50/p90/mean per stage, frames per second, and how many readings were exactly right. Run it
from a checkout (it needs tests/synthetic.py and MNIST: --data or MNIST_EDGE_DATA).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time

import numpy as np

from edge.classifier import Classifier
from edge.digits import segment, to_grey
from edge.errors import UserError
from edge.models import resolve_model

log = logging.getLogger(__name__)
STAGES = ("to_grey", "segment", "classify", "total")


def make_frames(n: int, seed: int, data: str | None) -> tuple[list[np.ndarray], list[str]]:
    """n BGR 640x480 frames of 1-4 MNIST test digits, and the true reading of each."""
    from benchmarks.synthetic import make_frame
    from train.data import load_mnist

    mnist = load_mnist(data)
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for _ in range(n):
        idx = rng.integers(0, len(mnist.x_test), int(rng.integers(1, 5)))
        frame, _ = make_frame(list(mnist.x_test[idx]), rng)
        frames.append(frame)
        truth.append("".join(str(int(d)) for d in mnist.y_test[idx]))
    return frames, truth


def measure(frames: list[np.ndarray], clf: Classifier, warmup: int = 5) -> tuple[dict, list[str]]:
    """Per-stage milliseconds for each frame (after `warmup` untimed frames) and each reading."""
    for f in frames[:warmup]:
        crops = segment(to_grey(f, "bgr"))
        if crops:
            clf.classify(np.stack([c.image for c in crops]))
    ms = {s: [] for s in STAGES}
    readings = []
    for f in frames:
        t0 = time.perf_counter()
        grey = to_grey(f, "bgr")
        t1 = time.perf_counter()
        crops = segment(grey)
        t2 = time.perf_counter()
        preds = clf.classify(np.stack([c.image for c in crops])) if crops else []
        t3 = time.perf_counter()
        for stage, a, b in (("to_grey", t0, t1), ("segment", t1, t2), ("classify", t2, t3),
                            ("total", t0, t3)):
            ms[stage].append(1e3 * (b - a))
        readings.append("".join(p.label for p in preds))
    return {s: np.array(v) for s, v in ms.items()}, readings


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python -m benchmarks.frames", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=str, default=None,
                   help="a .tflite or .onnx model (default: the shipped models/model_int8.tflite)")
    p.add_argument("--runtime", type=str, default=None,
                   help="litert, tflite-runtime or onnxruntime (default: the first installed)")
    p.add_argument("--frames", type=int, default=200, help="frames to time (default: 200)")
    p.add_argument("--cv-threads", type=int, default=1,
                   help="OpenCV threads (default: 1; 0 lets OpenCV pick, as mnist-edge camera does)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames")
    p.add_argument("--data", type=str, default=None, help="MNIST (default: $MNIST_EDGE_DATA, ...)")
    return p


def main(args: argparse.Namespace) -> int:
    import cv2

    if args.frames < 1:
        raise UserError(f"--frames {args.frames}: expected 1 or more")
    if args.cv_threads > 0:
        cv2.setNumThreads(args.cv_threads)
    model = resolve_model(args.model)
    clf = Classifier(model, args.runtime, threads=1)
    frames, truth = make_frames(args.frames, args.seed, args.data)
    ms, readings = measure(frames, clf)
    n_digits = sum(len(t) for t in truth)
    right = sum(r == t for r, t in zip(readings, truth, strict=True))
    digits_right = sum(sum(a == b for a, b in zip(r, t, strict=False)) for r, t in
                       zip(readings, truth, strict=True) if len(r) == len(t))
    cv_threads = args.cv_threads if args.cv_threads > 0 else f"OpenCV's choice ({cv2.getNumThreads()})"
    print(f"{args.frames} synthetic 640x480 frames, 1-4 MNIST test digits each ({n_digits} digits)")
    print(f"model {model} in {clf.runtime}, 1 interpreter thread, OpenCV threads: {cv_threads}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.machine()}, {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {load:.1f} (other work slows every stage)")
    print(f"{'stage':<10}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}")
    for s in STAGES:
        v = ms[s]
        print(f"{s:<10}{np.percentile(v, 50):>9.2f}{np.percentile(v, 90):>9.2f}{v.mean():>9.2f}")
    total = ms["total"]
    print(f"frames/s: {1e3 / total.mean():.1f} (from the mean total), {1e3 / np.median(total):.1f} "
          "(from the median)")
    print(f"readings exactly right: {right}/{len(truth)} ({100 * right / len(truth):.1f} %); digits "
          f"right where the count matched: {digits_right}/{n_digits} ({100 * digits_right / n_digits:.1f} %)")
    return 0


if __name__ == "__main__":
    import logging as _logging
    import sys

    _logging.basicConfig(level=_logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(main(get_args_parser().parse_args()))
    except UserError as e:
        print(f"benchmarks.frames: error: {e}", file=sys.stderr)
        sys.exit(2)
