"""Every export checks itself in the runtime a device will use, through the device's own Classifier.

fp32 files must match the Keras model's probabilities; int8 files report accuracy, its change
against the Keras float model, and agreement with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.classifier import Classifier
from edge.errors import UserError

FP32_TOLERANCE = 1e-4   # max |p_file - p_keras| on real digits
FP32_CHECK_IMAGES = 1000


@dataclass
class Reference:
    """The Keras float model's view of the test set, computed once per export."""

    x_test: np.ndarray       # uint8 (N, 28, 28)
    y_test: np.ndarray
    probs: np.ndarray        # Keras float probabilities (N, 10)

    @property
    def accuracy(self) -> float:
        return float((self.probs.argmax(1) == self.y_test).mean())


@dataclass
class Validation:
    file: str
    runtime: str
    precision: str
    ok: bool
    figures: dict = field(default_factory=dict)
    error: str | None = None

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        if self.error:
            return f"{mark} {self.file:<20} {self.runtime:<12} {self.error}"
        f = self.figures
        if self.precision == "fp32":
            detail = f"max |Δp| {f['max_abs_diff']:.1e} (≤ {FP32_TOLERANCE:.0e}) on {f['images']} digits"
        else:
            detail = (f"acc {100 * f['accuracy']:.2f} %  Δ {f['delta_pp']:+.2f} pp vs Keras  "
                      f"agreement {100 * f['agreement']:.2f} %")
        return f"{mark} {self.file:<20} {self.runtime:<12} {detail}"


def validate(path, runtime: str, precision: str, ref: Reference, max_drop_pp: float) -> Validation:
    name = str(getattr(path, "name", path))
    try:
        clf = Classifier(path, runtime=runtime, threads=None)
    except UserError as e:
        return Validation(name, runtime, precision, False, error=f"does not load: {e}")
    if precision == "fp32":
        n = min(FP32_CHECK_IMAGES, len(ref.x_test))
        p = clf.predict_batches(ref.x_test[:n])
        diff = float(np.abs(p - ref.probs[:n]).max())
        return Validation(name, runtime, precision, diff <= FP32_TOLERANCE,
                          {"max_abs_diff": diff, "images": n, "tolerance": FP32_TOLERANCE})
    p = clf.predict_batches(ref.x_test)
    pred = p.argmax(1)
    acc = float((pred == ref.y_test).mean())
    delta = 100 * (acc - ref.accuracy)
    figures = {"accuracy": acc, "keras_accuracy": ref.accuracy, "delta_pp": round(delta, 4),
               "agreement": float((pred == ref.probs.argmax(1)).mean()), "images": len(pred),
               "max_drop_pp": max_drop_pp}
    return Validation(name, runtime, precision, -delta <= max_drop_pp, figures)
