"""Synthetic camera frames of MNIST digits on paper, for tests and the frame benchmark.

    >>> import numpy as np
    >>> from benchmarks.synthetic import make_frame
    >>> one = np.zeros((28, 28), np.uint8); one[6:22, 12:16] = 255          # an MNIST-layout "1"
    >>> frame, boxes = make_frame([one, one], np.random.default_rng(0))    # or MNIST test digits
    >>> frame.shape, frame.dtype, len(boxes)                              # BGR, [(x, y, w, h), ...]
    ((480, 640, 3), dtype('uint8'), 2)

It lives in benchmarks/ (an installed package) rather than tests/ because the frame and MQTT
latency benchmarks, the desk scenes (`lamp`) and tools/pi_emulated.py draw their frames with it too;
the tests import it from here.

Digits are drawn dark on light paper, unevenly lit (a linear gradient times a vignette), with a
slight colour cast, mild defocus and Gaussian noise; 15-45 % of the frame height (less when four
big ones would not fit side by side), rotated up to +-10 degrees, left to right, never overlapping.
Everything is deterministic given `rng`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

INK_LEVEL = 0.5  # a pixel belongs to a digit's true box where its ink coverage is at least this


def lamp(rng: np.random.Generator, size: tuple[int, int], tilt: tuple[float, float] = (0.1, 0.3),
         offset: float = 0.2, vignette: tuple[float, float] = (0.15, 0.4)) -> np.ndarray:
    """HxW float32 illumination around 1: a linear gradient (up to +-`tilt` across the frame, any
    direction) times a vignette (down by `vignette` at the corners) centred up to `offset` off."""
    h, w = size
    yy = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    xx = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    theta = float(rng.uniform(0, 2 * np.pi))
    field = 1 + float(rng.uniform(*tilt)) * 2 * (xx * math.cos(theta) + yy * math.sin(theta))
    cy, cx = float(rng.uniform(-offset, offset)), float(rng.uniform(-offset, offset))
    r2 = ((yy - cy) ** 2 * h * h + (xx - cx) ** 2 * w * w) / (0.25 * (h * h + w * w))
    return (field * (1 - float(rng.uniform(*vignette)) * r2)).astype(np.float32)


def _lighting(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 float32 paper brightness: gradient x vignette x colour cast, roughly 90..240."""
    field = lamp(rng, size)
    cast = (rng.uniform(0.9, 1.1, size=3) * rng.uniform(170, 225)).astype(np.float32)
    return field[:, :, None] * cast


def _finish(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Camera softness and sensor noise, then uint8."""
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma) + np.float32(0.5)
    return np.clip(img, 0, 255, out=img).astype(np.uint8)


def _ink(digit: np.ndarray, height: float, angle: float) -> np.ndarray:
    """An MNIST digit (uint8 28x28, white on black) -> float ink coverage 0..1.

    Scaled as MNIST was: its 20-px box (the longest side) becomes `height` px, so a normal digit is
    `height` tall and a rare wide, flat one is `height` wide.
    """
    ys, xs = np.nonzero(digit)
    a = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    s = height / max(a.shape)
    a = cv2.resize(a, (max(1, round(a.shape[1] * s)), max(1, round(a.shape[0] * s))),
                   interpolation=cv2.INTER_CUBIC)
    a = np.clip((a - 0.15) / 0.5, 0, 1)  # crisper edges, like a pen stroke seen by a camera
    pad = int(0.3 * max(a.shape)) + 2
    a = cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    m = cv2.getRotationMatrix2D((a.shape[1] / 2, a.shape[0] / 2), angle, 1.0)
    a = cv2.warpAffine(a, m, (a.shape[1], a.shape[0]), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(a > 0.01)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


HEIGHT_FRAC = (0.15, 0.45)  # a clean frame's digits are this share of its height, smallest to tallest


def make_frame(digits: list[np.ndarray], rng: np.random.Generator,
               size: tuple[int, int] = (480, 640), height_frac: tuple[float, float] = HEIGHT_FRAC,
               max_angle: float = 10.0, noise_sigma: tuple[float, float] = (2.0, 6.0),
               ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Draw 1-4 MNIST digits left to right on paper -> (BGR uint8 HxWx3, true boxes x, y, w, h)."""
    if not 1 <= len(digits) <= 4:
        raise ValueError("make_frame: 1 to 4 digits")
    h, w = size
    margin, min_gap = int(0.04 * w), int(0.04 * w)
    heights = rng.uniform(*height_frac, size=len(digits)) * h
    angles = rng.uniform(-max_angle, max_angle, size=len(digits))
    inks = [_ink(d, ht, an) for d, ht, an in zip(digits, heights, angles, strict=True)]
    fixed = 2 * margin + min_gap * (len(inks) - 1)
    width = sum(i.shape[1] for i in inks)
    while fixed + width > w:  # four big digits don't fit side by side: shrink them all alike (again
        heights = heights * 0.98 * (w - fixed) / width  # if rotation and rounding still overflow)
        inks = [_ink(d, ht, an) for d, ht, an in zip(digits, heights, angles, strict=True)]
        width = sum(i.shape[1] for i in inks)
    slack = w - fixed - sum(i.shape[1] for i in inks)
    extra = rng.dirichlet(np.ones(len(inks) + 1)) * max(slack, 0)
    coverage = np.zeros((h, w), np.float32)
    boxes, x = [], margin + int(extra[0])
    for k, ink in enumerate(inks):
        ih, iw = ink.shape
        y = int(rng.integers(margin, max(margin + 1, h - margin - ih)))
        coverage[y:y + ih, x:x + iw] = np.maximum(coverage[y:y + ih, x:x + iw], ink)
        ys, xs = np.nonzero(ink >= INK_LEVEL)
        boxes.append((x + int(xs.min()), y + int(ys.min()), int(np.ptp(xs)) + 1,
                      int(np.ptp(ys)) + 1))
        x += iw + min_gap + int(extra[k + 1])
    paper = _lighting(rng, size)
    ink_rgb = rng.uniform(0.15, 0.4) + rng.uniform(-0.05, 0.05, size=3)  # reflectance, bluish/black
    img = paper * (1 - coverage[:, :, None] * (1 - ink_rgb.astype(np.float32)))
    return _finish(img, rng, rng.uniform(*noise_sigma)), boxes


def blank_frame(rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Unevenly lit, noisy paper with nothing on it (BGR uint8)."""
    return _finish(_lighting(rng, size), rng, rng.uniform(2.0, 6.0))


def noise_frame(rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Paper under heavy sensor noise plus salt-and-pepper specks: no digit (BGR uint8)."""
    img = _finish(_lighting(rng, size), rng, rng.uniform(15.0, 35.0))
    specks = rng.random(size) < 0.01
    img[specks] = rng.choice(np.array([0, 255], np.uint8), size=(int(specks.sum()), 1))
    return img
