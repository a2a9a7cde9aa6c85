"""One calibration source, two thin adapters (TFLite and onnxruntime).

    >>> from train.data import load_mnist
    >>> from export.calibration import calibration_set
    >>> calib = calibration_set(load_mnist(), n=500, seed=0)
    >>> calib.images.shape
    (500, 28, 28, 1)

The sample is seeded and class-balanced and comes from the training images only: the test set is
kept for the final accuracy figures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edge.errors import UserError
from train.data import Mnist, preprocess

MIN_SAMPLES = 10  # one calibration image per class at least
SAMPLES = 500  # the default sample: 50 training images per class


@dataclass
class Calibration:
    images: np.ndarray   # float32 (N, 28, 28, 1), preprocessed exactly as in training
    indices: np.ndarray  # positions in the training set
    seed: int

    def describe(self) -> dict:
        return {"samples": int(len(self.indices)), "seed": self.seed, "split": "train",
                "class_balanced": True,
                "indices_sha256": hashlib.sha256(self.indices.astype(np.int64).tobytes()).hexdigest()}


def calibration_indices(y_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n training indices, as near n/10 per class as the data allows, in a seeded order."""
    if n < MIN_SAMPLES:
        raise UserError(f"--calib-samples {n}: expected at least {MIN_SAMPLES} (one per class)")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y_train == c)) for c in range(10)]
    if any(len(p) == 0 for p in per_class):
        raise UserError("cannot build a calibration set: some digit has no training images")
    take = [p[: n // 10 + (c < n % 10)] for c, p in enumerate(per_class)]
    idx = np.concatenate(take)
    if len(idx) < n:
        raise UserError(f"--calib-samples {n}: the training set can give only {len(idx)} "
                        "class-balanced images")
    return np.sort(idx)


def calibration_set(data: Mnist, n: int = SAMPLES, seed: int = 0) -> Calibration:
    idx = calibration_indices(data.y_train, n, seed)
    return Calibration(preprocess(data.x_train[idx]), idx, seed)


def tflite_representative_dataset(calib: Calibration):
    """TFLiteConverter.representative_dataset: a callable yielding one [image batch] at a time."""
    def gen():
        for i in range(len(calib.images)):
            yield [calib.images[i: i + 1]]
    return gen


def ort_calibration_reader(calib: Calibration, input_name: str):
    """onnxruntime.quantization CalibrationDataReader over the same images."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(range(len(calib.images)))

        def get_next(self):
            i = next(self._it, None)
            return None if i is None else {input_name: calib.images[i: i + 1]}

        def rewind(self):
            self._it = iter(range(len(calib.images)))

    return Reader()
