"""A digit's ink -> the 28x28 crop the classifier reads, made as MNIST's digits were made.

    >>> import numpy as np
    >>> from edge.crops import mnist_style
    >>> bar = np.zeros((60, 10), np.uint8); bar[5:55, 3:7] = 255      # a tall thin "1"
    >>> img = mnist_style(bar); img.shape, int(img.max()), np.nonzero(img.any(axis=1))[0].size
    ((28, 28), 255, 20)

`mnist_style` scales and centres a patch as MNIST did (20-px box, centre of mass at the centre);
`crop_ink` turns one digit's ink in a window of the darkness map into that soft crop (rejecting
soft-edged shadows, thickening thin pens) and, for a piece wide enough to be two touching digits,
the ways to cut it in two. Used by segmentation (`edge.digits`) and by located boxes
(`edge.located`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.fast import median, percentile_u8

if TYPE_CHECKING:
    from edge.digits import SegmentConfig


@dataclass
class DigitCrop:
    """One digit found in a frame."""

    box: tuple[int, int, int, int]  # x, y, w, h in the frame's pixel coordinates
    image: np.ndarray  # 28x28 uint8, white digit on black, MNIST-centred
    splits: list[tuple[DigitCrop, DigitCrop]] = field(default_factory=list)  # a wide piece cut in
    #                                          two at each of its thinnest columns, thinnest first


def mnist_style(patch: np.ndarray) -> np.ndarray:
    """A digit patch (white on black; bool, or numbers 0..255) -> 28x28 uint8, made as MNIST was.

    Trimmed to its non-zero bounding box, longest side scaled to 20 px keeping the aspect ratio
    (INTER_AREA when shrinking), pasted on a black 28x28 canvas and moved by whole pixels so the
    centre of mass lies within 0.5 px of (row 14, col 14), unless that would cut the digit off.
    An empty patch gives zeros.
    """
    a = np.asarray(patch)
    if a.ndim != 2:
        raise ValueError(f"mnist_style: expected a 2-D patch, got shape {a.shape}")
    a = a.astype(np.float32) * 255.0 if a.dtype == bool else a.astype(np.float32, copy=False)
    out = np.zeros((28, 28), np.uint8)
    x, y, w, h = cv2.boundingRect(cv2.compare(a, 0, cv2.CMP_GT))
    if w == 0:
        return out
    a = a[y:y + h, x:x + w]
    s = 20.0 / max(a.shape)
    nh, nw = (min(20, max(1, math.floor(n * s + 0.5))) for n in a.shape)
    small = cv2.resize(a, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    small = np.rint(np.clip(small, 0, 255)).astype(np.uint8)
    total = float(small.sum())
    if total == 0:
        return out
    cy = float(small.sum(axis=1) @ np.arange(nh)) / total
    cx = float(small.sum(axis=0) @ np.arange(nw)) / total
    top = min(max(math.floor(14.5 - cy), 0), 28 - nh)
    left = min(max(math.floor(14.5 - cx), 0), 28 - nw)
    out[top:top + nh, left:left + nw] = small
    return out


def crop_ink(core: np.ndarray, dark: np.ndarray, thr: float, origin: tuple[int, int],
             cfg: SegmentConfig, splits: bool = True) -> DigitCrop | None:
    """One digit's ink (`core`, bool) in a window of the darkness map (`dark`, uint8, same shape,
    whose top-left is `origin` in working pixels) -> its soft MNIST-style crop, or None if the ink
    fill is out of range, its edges are soft (a shadow; faint ink must have sharper ones), or
    nothing is left. `splits`: a piece wide enough to be two touching digits also carries the ways
    to cut it in two."""
    x0, y0 = origin
    ex, ey, ew, eh = cv2.boundingRect(core.view(np.uint8))  # the ink's extent
    if ew == 0:
        return None
    ink = cv2.countNonZero(core.view(np.uint8))
    if not cfg.min_fill <= ink / (ew * eh) <= cfg.max_fill:
        return None
    r = max(1, eh // 40)  # keep the anti-aliased rim just outside the thresholded mask
    # Only the ink's extent matters, grown by the rim, the thickening below (at most min_stroke in
    # the 20-px box) and a pixel for the edge test: a located region is ~4x that, with its margin.
    pad = r + 2 + math.ceil(cfg.min_stroke * max(ew, eh) / 20.0)
    wx, wy = max(0, ex - pad), max(0, ey - pad)
    core, dark = core[wy:ey + eh + pad, wx:ex + ew + pad], dark[wy:ey + eh + pad, wx:ex + ew + pad]
    x0, y0, ex, ey = x0 + wx, y0 + wy, ex - wx, ey - wy
    rim = cv2.dilate(core.view(np.uint8), np.ones((2 * r + 1,) * 2, np.uint8)).view(bool)
    d = dark.astype(np.float32)
    floor = 0.5 * thr  # paper noise below this is zeroed: MNIST's background is exactly 0
    level = max(percentile_u8(dark, core, cfg.ink_percentile), thr + 1.0)
    soft = np.clip((d - floor) * (255.0 / (level - floor)), 0, 255) * rim
    # Stroke width ~ 2 x ink area / outline length; in the 20-px box it is that x 20 / longest side.
    rim1 = core & ~cv2.erode(core.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    outline = np.count_nonzero(rim1)
    if cfg.min_edge > 0:
        gx, gy = cv2.spatialGradient(dark)  # 3x3 Sobel, exact in int16
        gx, gy = gx[rim1].astype(np.float32), gy[rim1].astype(np.float32)
        edge = median(np.sqrt(gx * gx + gy * gy)) / 8.0  # Sobel's 3x3 weights sum to 8
        if edge < (cfg.faint_edge if level < cfg.faint_level else cfg.min_edge) * level:
            return None
    stroke = 2.0 * ink / max(1, outline) * 20.0 / max(ew, eh)
    grow = round((cfg.min_stroke - stroke) * max(ew, eh) / 20.0)
    if grow >= 1:
        soft = cv2.dilate(soft, np.ones((grow + 1, grow + 1), np.uint8))
    img = mnist_style(soft)
    if not img.any():
        return None
    wide = splits and ew >= cfg.split_aspect * eh
    splits = _splits(core, soft, x0, y0, (ex, ew), cfg) if wide else []
    return DigitCrop((int(x0 + ex), int(y0 + ey), int(ew), int(eh)), img, splits)


def _splits(core: np.ndarray, soft: np.ndarray, x0: int, y0: int, cols: tuple[int, int],
            cfg: SegmentConfig) -> list[tuple[DigitCrop, DigitCrop]]:
    """Up to `split_tries` cuts of a wide piece into two digits, at the columns with the least
    ink in its middle 60 % (at least a tenth of its width apart), least ink first."""
    ex, ew = cols
    profile = core[:, ex:ex + ew].sum(axis=0).astype(np.float32)
    lo, hi = int(0.2 * ew), max(int(0.2 * ew) + 1, int(0.8 * ew))
    centre = np.abs(np.arange(lo, hi) - ew / 2) / ew  # ties go to the middle
    order = np.argsort(profile[lo:hi] + 0.5 * centre, kind="stable") + lo
    cuts: list[int] = []
    for c in order.tolist():
        if all(abs(c - k) >= max(2, ew // 10) for k in cuts):
            cuts.append(c)
        if len(cuts) == cfg.split_tries:
            break
    out = []
    for c in cuts:
        left, right = _part(core, soft, x0, y0, 0, ex + c), _part(core, soft, x0, y0, ex + c, core.shape[1])
        if left and right:
            out.append((left, right))
    return out


def _part(core: np.ndarray, soft: np.ndarray, x0: int, y0: int, c0: int, c1: int) -> DigitCrop | None:
    """The columns c0:c1 of a crop as a digit of its own (None if they hold no ink)."""
    piece = core[:, c0:c1]
    rows, cols = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
    if rows.size == 0:
        return None
    img = mnist_style(soft[:, c0:c1])
    box = (int(x0 + c0 + cols[0]), int(y0 + rows[0]), int(cols[-1] + 1 - cols[0]),
           int(rows[-1] + 1 - rows[0]))
    return DigitCrop(box, img) if img.any() else None
