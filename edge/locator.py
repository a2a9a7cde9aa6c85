"""Where the digits are: a tiny fully convolutional int8 network marks digit centres on a coarse grid.

    >>> import numpy as np
    >>> from edge.locator import Locator
    >>> loc = Locator("models/locator_int8.tflite")
    >>> loc.locate(np.full((480, 640), 200, np.uint8))             # blank paper: no digit
    []

CenterNet in miniature (FOMO-like cost): the grey frame is shrunk to 320x240 (a frame of another
aspect to 240 px on its shorter side, read in overlapping 320x240 windows), and for every cell of
an 80x60 grid (8x8 frame pixels at 640x480) the network says how likely a digit's centre lies in
it, where in the cell, and how wide and tall that digit is. A locator file carries its own input
size and grid (read from the file), so an older, coarser locator still loads. Local maxima above
`min_score` become boxes, and of overlapping boxes only the surest stays (and a weaker box lying
mostly inside a surer one). `edge.located` turns the boxes into crops. Trained on generated desk
and clean scenes of MNIST *training* digits (`mnist-edge locator`).

Predict, camera and the frame benchmark find digits with the shipped locator unless given
`--locator none` (segmentation alone): on desk scenes it reads more frames exactly than
segmentation and leaves no blank page with a reading, at fewer frames per second (README, "On the
device"; docs/desk-reading.md, "The digit locator").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge import fast
from edge.backends import check_scales, dequantize, open_flagged, pixel_lut
from edge.errors import UserError

log = logging.getLogger(__name__)

INPUT_HW = (240, 320)  # the network's input, rows x cols: the frame shrunk (INTER_AREA); half of
#   640x480, so a thin ballpoint stroke and a narrow "1" close beside another digit stay visible
STRIDE = 4  # input pixels per grid cell: the grid is 60 x 80, centres of digits ~20 px apart part
GRID = (INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE)  # the output's rows x cols
CHANNELS = ("score", "log_w", "log_h", "dx", "dy")  # the output, per cell: centre logit, the
#   digit's width and height as log(size / cell size in frame pixels), centre offset in the cell
MAX_OVERLAP = 0.4  # of two boxes overlapping more than this (IoU), only the surer is a digit
MAX_INSIDE = 0.5  # a less sure box lying this much (share of its area) inside a surer one is a part of
#   that digit (a big 8's loop seen as a "1"), not a digit of its own
MAX_PEAKS = 128  # only the surest peaks are weighed (a digit makes 1-3): a textured surface or
#   noise makes hundreds, whose pairwise checks cost 25 ms a frame (12 ms at 128); a page with more
#   than ~80 digits loses its least sure ones (logged)
MIN_SCORE = 0.35  # a cell whose centre probability is at least this, and a local maximum, is a digit
CLOSE_UP = 0.35  # a box taller than this share of the frame's shorter side is a digit held close: the
#   frame is located again zoomed out by ZOOM_OUT, where such a digit is as tall as the network learned
#   (it saw desk digits up to a third of the frame tall and clean ones up to 0.6; closer, it boxes parts)
ZOOM_OUT = 2  # how much smaller the frame is in that second look, centred on its own repeated edge
MAX_WINDOWS = 4  # a frame of another aspect is read in at most this many input-sized windows (16:9
#   takes 2, 3:1 takes 4); a longer strip is squashed into one input, as every frame once was


@dataclass
class Box:
    """One digit located in a frame."""

    x: float  # left, frame pixels
    y: float  # top
    w: float  # width
    h: float  # height
    score: float  # centre probability


def encode(boxes: list[tuple[float, float, float, float]], frame_hw: tuple[int, int],
           grid: tuple[int, int] = GRID) -> np.ndarray:
    """Frame boxes (x, y, w, h) -> training target (rows, cols, 6): the centre heat, a centre mask,
    then log_w, log_h, dx, dy at centre cells. The heat is 1 at a digit's centre cell and falls off
    as a Gaussian whose spread follows the digit's width across and its height down (elliptical, as
    in TTFNet): cells along a tall "1" count as near its centre, not as firm "no digit here" cells, as
    a round Gaussian from its width made them (docs/desk-reading.md, "The digit locator", for what it
    changed)."""
    rows, cols = grid
    cell_y, cell_x = frame_hw[0] / rows, frame_hw[1] / cols
    t = np.zeros((rows, cols, 6), np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    for x, y, w, h in boxes:
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x + w / 2) / cell_x, (y + h / 2) / cell_y
        i, j = min(int(cy), rows - 1), min(int(cx), cols - 1)
        sx, sy = 0.3 + 0.15 * w / cell_x, 0.3 + 0.15 * h / cell_y
        g = np.exp(-(xx - j) ** 2 / (2 * sx ** 2) - (yy - i) ** 2 / (2 * sy ** 2))
        t[:, :, 0] = np.maximum(t[:, :, 0], g)
        t[i, j] = (1.0, 1.0, np.log(w / cell_x), np.log(h / cell_y), cx - j, cy - i)
    return t


def shrink(grey: np.ndarray, input_hw: tuple[int, int] = INPUT_HW) -> np.ndarray:
    """uint8 HxW frame -> the network's uint8 input image (rows x cols input_hw)."""
    return cv2.resize(grey, input_hw[::-1], interpolation=cv2.INTER_AREA)


def decode(out: np.ndarray, frame_hw: tuple[int, int], min_score: float = MIN_SCORE) -> list[Box]:
    """The network's float output (rows, cols, 5) -> boxes in frame pixels, left to right."""
    score = 1.0 / (1.0 + np.exp(-out[:, :, 0]))
    peak = (score >= min_score) & (score >= cv2.dilate(score, np.ones((3, 3), np.uint8)))
    ii, jj = np.nonzero(peak)
    surest = np.argsort(-score[ii, jj], kind="stable")[:MAX_PEAKS]
    if len(ii) > MAX_PEAKS:
        log.debug("locator: %d peaks, the %d surest weighed", len(ii), MAX_PEAKS)
    rows, cols = score.shape
    cell_y, cell_x = frame_hw[0] / rows, frame_hw[1] / cols
    boxes = []
    for i, j in zip(ii[surest].tolist(), jj[surest].tolist(), strict=True):
        lw, lh, dx, dy = (float(v) for v in out[i, j, 1:5])
        w, h = np.exp(lw) * cell_x, np.exp(lh) * cell_y
        cx, cy = (j + dx) * cell_x, (i + dy) * cell_y
        boxes.append(Box(cx - w / 2, cy - h / 2, w, h, float(score[i, j])))
    return one_per_digit(boxes)


def one_per_digit(boxes: list[Box]) -> list[Box]:
    """Boxes, surest first -> one box per digit, left to right: the surest of overlapping ones."""
    kept: list[Box] = []
    for b in boxes:
        if all(_overlap(b, k) < MAX_OVERLAP and _inside(b, k) < MAX_INSIDE for k in kept):
            kept.append(b)
    kept.sort(key=lambda b: b.x + b.w / 2)
    return kept


def with_whole_digits(boxes: list[Box], whole: list[Box]) -> list[Box]:
    """A look's boxes with big boxes from a zoomed-out look put in place of the boxes they cover, when
    those were parts of that digit: the big box is surer than each, or they lie above one another.
    Two digits side by side under one less sure big box stay two; a big box covering none of the
    first look's boxes is not added. Left to right."""
    for w in whole:
        parts = [b for b in boxes if _overlap(b, w) >= MAX_OVERLAP or _inside(b, w) >= MAX_INSIDE]
        if parts and (all(w.score > b.score for b in parts) or _stacked(parts)):
            boxes = [b for b in boxes if b not in parts] + [w]
    return sorted(boxes, key=lambda b: b.x + b.w / 2)


def _stacked(parts: list[Box]) -> bool:
    """Two or more boxes, each above or below another whose columns cover more than a third of the
    narrower one's width: pieces of one digit (a close-up's loop and tail), not a row of digits."""
    def above(a: Box, b: Box) -> bool:
        across = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x)) / max(1e-6, min(a.w, b.w))
        dx, dy = abs((a.x + a.w / 2) - (b.x + b.w / 2)), abs((a.y + a.h / 2) - (b.y + b.h / 2))
        return across > 1 / 3 and dy > dx
    return len(parts) > 1 and all(any(above(a, b) for b in parts if b is not a) for a in parts)


def _intersection(a: Box, b: Box) -> float:
    """The area two boxes share."""
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy


def _inside(a: Box, b: Box) -> float:
    """The share of box a that lies inside box b."""
    return _intersection(a, b) / max(1e-6, a.w * a.h)


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union: a narrow "1" written close beside a wide digit is not a duplicate."""
    i = _intersection(a, b)
    return i / max(1e-6, a.w * a.h + b.w * b.h - i)


class Locator:
    """Loads a locator .tflite or .onnx file; `locate(grey)` -> digit boxes in frame pixels."""

    def __init__(self, model: str | Path, runtime: str | None = None, threads: int | None = 1,
                 min_score: float = MIN_SCORE, flag: str = "--locator"):
        self.path = Path(model)
        self.backend = open_flagged(model, runtime, threads, flag)  # (--desk-locator, ...)
        self.min_score = min_score
        spec, out = self.backend.input, self.backend.output
        grid = len(out.shape) == 4 and out.shape[-1] == len(CHANNELS)
        if len(spec.shape) != 4 or spec.shape[-1] != 1 or not grid:
            raise UserError(f"{flag} {model}: not a digit locator (its input is {_dims(spec.shape)} and "
                            f"its output {_dims(out.shape)}; a locator reads a grey frame, N x rows x cols "
                            f"x 1, into a grid of {len(CHANNELS)} channels; `mnist-edge locator` makes one)")
        if min(spec.shape[1:3]) < 1:
            raise UserError(f"{flag} {model}: its input's rows and columns are not fixed "
                            f"({_dims(spec.shape)}); a locator file carries the input size it was made for")
        check_scales(self.backend, flag, model,
                     "the .onnx locator (e.g. models/locator_int8.onnx) or another runtime")
        self.input_hw = tuple(int(v) for v in spec.shape[1:3])  # the file's own input size
        self._lut = pixel_lut(spec)

    def raw(self, grey: np.ndarray) -> np.ndarray:
        """The network's float output (rows, cols, 5) for one uint8 HxW frame."""
        return self.run(shrink(grey, self.input_hw))

    def run(self, small: np.ndarray) -> np.ndarray:
        """The network's float output for an input already shrunk to `input_hw` (uint8)."""
        y = self.backend.run(cv2.LUT(small, self._lut)[None, :, :, None])[0]
        return dequantize(y, self.backend.output)

    def locate(self, grey: np.ndarray) -> list[Box]:
        """Digit boxes in frame pixels, left to right (`find`); when one is a close-up's (taller than
        CLOSE_UP of the frame), the frame is also read zoomed out, and its big boxes replace the
        parts of those digits the first look boxed (docs/desk-reading.md, "The digit locator")."""
        boxes = self.find(grey)
        big = CLOSE_UP * min(grey.shape[:2])
        if any(b.h > big for b in boxes):
            boxes = with_whole_digits(boxes, [b for b in self.zoomed_out(grey) if b.h > big])
        return boxes

    def zoomed_out(self, grey: np.ndarray) -> list[Box]:
        """Digit boxes of the frame seen ZOOM_OUT times smaller, in the middle of an input filled
        with its repeated edge; [] for a frame too long for that."""
        H, W = grey.shape[:2]
        ih, iw = self.input_hw
        s = min(ih, iw) / max(1, min(H, W)) / ZOOM_OUT
        sh, sw = max(1, round(H * s)), max(1, round(W * s))
        if sh > ih or sw > iw:
            return []
        top, left = (ih - sh) // 2, (iw - sw) // 2
        small = cv2.copyMakeBorder(fast.shrink(grey, (sw, sh)),  # 4x on a 4:3 frame: by halvings
                                   top, ih - sh - top, left, iw - sw - left, cv2.BORDER_REPLICATE)
        boxes = []
        for b in decode(self.run(small), (ih / s, iw / s), self.min_score):
            x, y = b.x - left / s, b.y - top / s
            if 0 <= x + b.w / 2 < W and 0 <= y + b.h / 2 < H:  # centred in the frame, not its edge
                boxes.append(Box(x, y, b.w, b.h, b.score))
        return boxes

    def find(self, grey: np.ndarray) -> list[Box]:
        """Digit boxes in frame pixels, left to right. A frame of the input's aspect (4:3) is shrunk
        to the input whole; any other is scaled so its shorter side fits the input's, as a 4:3 frame
        is, and read in overlapping windows (`windows`), so a 16:9 frame's digits keep their shape
        and size rather than being squashed across (docs/desk-reading.md, "Frame size")."""
        H, W = grey.shape[:2]
        ih, iw = self.input_hw
        s = min(ih, iw) / max(1, min(H, W))
        sh, sw = max(1, round(H * s)), max(1, round(W * s))
        rows, cols = windows(max(sh, ih), ih), windows(max(sw, iw), iw)
        if (sh, sw) == (ih, iw) or len(rows) * len(cols) > MAX_WINDOWS:
            return decode(self.raw(grey), (H, W), self.min_score)  # the whole frame in one input
        small = cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA)
        if sh < ih or sw < iw:  # narrower than the input (portrait): its edge repeated
            small = cv2.copyMakeBorder(small, 0, max(0, ih - sh), 0, max(0, iw - sw), cv2.BORDER_REPLICATE)
        boxes = []
        for y0, top, bottom in rows:
            for x0, left, right in cols:
                for b in decode(self.run(small[y0:y0 + ih, x0:x0 + iw]), (ih / s, iw / s), self.min_score):
                    cx, cy = x0 + (b.x + b.w / 2) * s, y0 + (b.y + b.h / 2) * s  # input pixels
                    # not at a window's inner edge, nor in the repeated edge beside the frame
                    if left <= cx < right and top <= cy < bottom and cx < sw and cy < sh:
                        boxes.append(Box(b.x + x0 / s, b.y + y0 / s, b.w, b.h, b.score))
        return one_per_digit(sorted(boxes, key=lambda b: -b.score))


def _dims(shape: tuple) -> str:
    return "x".join("?" if d is None or d < 0 else str(d) for d in shape)


def windows(size: int, span: int) -> list[tuple[int, float, float]]:
    """Windows of `span` input pixels along an axis of `size`: (start, centres from, centres to).
    They overlap by at least half a span; each reports the digits centred in its middle half (and
    out to the frame's edge at either end), so every digit up to half a span wide is whole in some
    window that reports it, and one seen by two is one box after `one_per_digit`."""
    if size <= span:
        return [(0, -math.inf, math.inf)]
    k = math.ceil((size - span) / (span / 2)) + 1
    starts = [round(i * (size - span) / (k - 1)) for i in range(k)]
    return [(a, -math.inf if i == 0 else a + span / 4, math.inf if i == k - 1 else a + 3 * span / 4)
            for i, a in enumerate(starts)]
