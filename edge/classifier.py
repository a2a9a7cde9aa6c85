"""The pure classifier: 28x28 uint8 digits in, dataclass predictions out. No camera, no TensorFlow.

    >>> import numpy as np
    >>> from edge.classifier import Classifier
    >>> clf = Classifier("models/model_int8.tflite")
    >>> preds = clf.classify(np.zeros((2, 28, 28), np.uint8))       # a batch of two blank images
    >>> len(preds), all(0.0 <= p.confidence <= 1.0 for p in preds)
    (2, True)

preprocess -> run -> postprocess. The model's input normalisation comes from the metadata that
travels with it, and its quantisation from the model's own tensors, so float, int8 and uint8 models
take the same uint8 images. Preprocessing is one table lookup: the 256 possible pixel values are
normalised and quantised once, when the model loads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.backends import open_backend
from edge.contract import DEFAULT_NORMALIZATION, ModelError, check_model
from edge.images import shown


def normalize(pixels: np.ndarray, norm: dict = DEFAULT_NORMALIZATION) -> np.ndarray:
    """uint8 pixels -> float32 model input values. The single definition, used by training too."""
    return pixels.astype(np.float32) / np.float32(norm["divide_by"]) - np.float32(norm["subtract"])


@dataclass
class Timing:
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


@dataclass
class Prediction:
    digit: int                  # argmax class
    label: str                  # its label from the metadata
    confidence: float           # its probability
    probabilities: np.ndarray = field(repr=False)  # dequantised, shape (10,)


class Classifier:
    """Loads a .tflite or .onnx model with its metadata; classifies batches of 28x28 uint8 digits."""

    def __init__(self, model: str | Path, runtime: str | None = None, threads: int | None = 1):
        self.backend = open_backend(model, runtime, threads)
        self.path = Path(model)
        self.metadata = self.backend.metadata() or {}
        # the model contract (edge.contract), checked once here: a wrong model is one line, not nonsense
        self.labels, self.normalization = check_model(model, self.backend, self.metadata)
        self._lut = self._input_table()
        self._logits = (self.metadata.get("output") or {}).get("kind") == "logits"
        self._out_lut = self._output_table()
        self._stamps: tuple | None = None
        self._check_outputs()

    def _check_outputs(self) -> None:
        """ModelError unless a blank image gives probabilities: a model that outputs logits and has lost
        (or never had) the metadata saying so would otherwise report scores above 1 as confidences,
        and --min-confidence would keep everything."""
        p = self.probabilities(np.zeros((1, 28, 28), np.uint8))[0]
        if np.all(np.isfinite(p)) and p.min() >= -0.02 and p.max() <= 1.02 and abs(p.sum() - 1) <= 0.1:
            return
        raise ModelError(f"{shown(self.path)}: its output for a blank image is not 10 probabilities (they "
                         f"sum to {float(p.sum()):.3g}, the largest is {float(p.max()):.3g}); a model that "
                         "outputs logits says so in its metadata (output.kind \"logits\")")

    @property
    def runtime(self) -> str:
        return self.backend.name

    def _input_table(self) -> np.ndarray:
        """Model input for each of the 256 pixel values: normalised, then quantised if need be."""
        real = normalize(np.arange(256, dtype=np.uint8), self.normalization)
        spec = self.backend.input
        if spec.scale is None:
            return real.astype(spec.dtype)
        info = np.iinfo(spec.dtype)
        q = np.round(real / np.float32(spec.scale)) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(spec.dtype)

    def _output_table(self) -> np.ndarray | None:
        """Dequantised value of each of the 256 codes of an 8-bit output (None for float outputs);
        for a logits output, exp() of it, so softmax is a lookup and a normalisation."""
        spec = self.backend.output
        if spec.scale is None:
            return None
        codes = np.arange(256, dtype=np.uint8).view(spec.dtype)  # index = the code's raw byte
        real = (codes.astype(np.float64) - spec.zero_point) * spec.scale
        return np.exp(real - real.max()) if self._logits else real.astype(np.float32)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) or (28, 28) -> the model's input tensor (N, 28, 28, 1)."""
        if images.dtype != np.uint8 or images.shape[-2:] != (28, 28):
            raise ValueError(f"expected uint8 images of shape (N, 28, 28), got {images.dtype} "
                             f"{images.shape}")
        return self._lut[images].reshape(-1, 28, 28, 1)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float32 probabilities (N, 10): dequantised with the output's own params,
        then softmax when the metadata says the model outputs logits."""
        if self._out_lut is not None:
            x = self._out_lut[raw.view(np.uint8)]  # dequantised, or exp() of the logits
        elif self._logits:
            x = np.exp(raw - raw.max(axis=1, keepdims=True))
        else:
            return raw.astype(np.float32, copy=False)
        return (x / x.sum(axis=1, keepdims=True)).astype(np.float32) if self._logits else x

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 10) probabilities; records per-stage timing in `last_timing`."""
        t0 = time.perf_counter()
        x = self.preprocess(images)
        t1 = time.perf_counter()
        raw = self.backend.run(x)
        t2 = time.perf_counter()
        p = self.postprocess(raw)
        self._stamps = (t0, t1, t2, time.perf_counter())  # Timing is built only when asked for
        return p

    @property
    def last_timing(self) -> Timing | None:
        """Per-stage milliseconds of the last call (None before the first)."""
        if self._stamps is None:
            return None
        t0, t1, t2, t3 = self._stamps
        return Timing(1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2))

    def classify(self, images: np.ndarray) -> list[Prediction]:
        p = self.probabilities(images)
        return [Prediction(d, self.labels[d], float(row[d]), row)
                for d, row in zip(p.argmax(axis=1).tolist(), p, strict=True)]

    def predict_batches(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Probabilities for many images, in batches (for evaluation)."""
        return np.concatenate([self.probabilities(images[i:i + batch_size])
                               for i in range(0, len(images), batch_size)])
