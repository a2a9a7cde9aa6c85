"""What int8 can gain on this CPU at all: plain convolutions, int8 against fp32, in LiteRT/XNNPACK.

    python -m benchmarks.int8_ceiling            # ~1 minute; needs the 'train' extra (TensorFlow)

A model's int8 file can only be as much faster than its fp32 twin as the CPU's int8 kernels are
faster than its fp32 ones. This builds single 3x3 convolutions of several sizes (from the edge
model's own shapes to big compute-bound ones), converts each to fp32 and full-int8 TFLite alike,
and times both at one thread: the int8 x column is the ceiling for any architecture here. On x86
without AVX-512 VNNI or AVX-VNNI, XNNPACK's int8 kernels widen to 16 bits and multiply-add about as
fast as fp32 FMA, so the ceiling is near 1x; with VNNI (and on ARM with dot product) it is higher.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.device import int8_line, read_cpu

SHAPES = ((14, 4, 16), (12, 16, 32), (8, 32, 64), (16, 32, 32), (32, 64, 64))  # side, in, out channels


def conv_tflite(side: int, cin: int, cout: int, int8: bool, seed: int = 0) -> bytes:
    """One 3x3 'same' convolution + ReLU as a TFLite flatbuffer, fp32 or full int8."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    i = keras.Input((side, side, cin))
    m = keras.Model(i, keras.layers.Conv2D(cout, 3, padding="same", activation="relu")(i))
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    if int8:
        rng = np.random.default_rng(seed)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        samples = [rng.random((1, side, side, cin), np.float32) for _ in range(16)]
        conv.representative_dataset = lambda: ([x] for x in samples)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def p50_us(flat: bytes, runs: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flat, num_threads=1)
    it.allocate_tensors()
    for _ in range(max(20, runs // 10)):
        it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e6


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python -m benchmarks.int8_ceiling", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=500, help="timed runs per file (p50 is reported)")
    return p


def main(args: argparse.Namespace) -> int:
    from edge.errors import UserError
    from train.tf_logs import to_log_file

    if args.runs < 1:
        raise UserError(f"--runs {args.runs}: expected 1 or more")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cpu = read_cpu()
    print(f"{cpu.core or platform.processor() or platform.machine()}; int8 instructions: {int8_line(cpu)}")
    print("one thread, LiteRT (XNNPACK), batch 1, p50 of each")
    print(f"{'conv 3x3':<18}{'MMACs':>7}{'fp32 µs':>9}{'int8 µs':>9}{'int8 ×':>8}")
    for side, cin, cout in SHAPES:
        macs = side * side * cin * cout * 9 / 1e6
        with tempfile.TemporaryDirectory() as tmp, to_log_file(Path(tmp) / "convert.log", stdout=True):
            flats = [conv_tflite(side, cin, cout, int8) for int8 in (False, True)]
        f, q = (p50_us(flat, args.runs) for flat in flats)
        label = f"{side}x{side}x{cin}->{cout}"
        print(f"{label:<18}{macs:>7.2f}{f:>9.1f}{q:>9.1f}{f / q:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    from edge.cli import script

    sys.exit(script("benchmarks.int8_ceiling"))
