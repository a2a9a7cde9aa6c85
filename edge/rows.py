"""Rows of located digits read whole: the locator's boxes grouped into rows, each row cut out as one
level strip of ink darkness, and a small network with a CTC output reads the strip's digits left
to right (docs/desk-reading.md, "Reading a row whole").

    >>> from edge.locator import Box
    >>> [len(r) for r in rows([Box(10, 10, 20, 40, 1), Box(34, 12, 22, 40, 1), Box(300, 200, 30, 80, 1)])]
    [2, 1]
    >>> import numpy as np
    >>> logits = np.full((1, 6, CLASSES), -9.0, np.float32)
    >>> logits[0, [0, 1, 2, 3, 4, 5], [4, 4, BLANK, 4, 8, BLANK]] = 9.0
    >>> decode(logits)[0].text
    '337'

A row reader sees what a crop of one box cannot: a "1" leaning on its neighbour that the locator
left unboxed, a digit split across two boxes, a stroke broken into pencil dots beside whole ones.
Its strip spans the row's boxes and MARGIN more at either end, so a digit the locator missed at a
row's end is still read. Boxes not in a line (digits scattered over a page) are rows of one box
each: `rows` groups only neighbours that overlap in height, are alike in size and close.
`edge.reader` reads a row it is unsure of from its crops too (`edge.reader.ROW_SURE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.backends import check_scales, dequantize, open_flagged, pixel_lut
from edge.errors import UserError
from edge.locator import Box

STRIP_HW = (32, 224)  # a strip's rows x columns: the row reader's input (grey, 1 channel)
HALF_HEIGHT = 0.72  # half the strip's height, in heights of the row's tallest box
MARGIN = 0.35  # the strip reaches past the row's first and last box by this many tallest-box heights
MAX_SLOPE = 0.3  # a row's tilt is taken from its boxes' centres, within +-this (about 17 degrees)
MAX_SHRINK = 2.0  # frame pixels per strip pixel one bilinear step may take; the frame is halved first
PAPER_SPAN = 0.6  # the paper under the ink: a max filter then a mean this share of the strip's height
DARK_FLOOR = 0.08  # a strip's darkness is scaled so its 99.5th percentile reads 1, never by more than
#   1 / this: a strip of paper alone stays faint
# rows: neighbours (left to right) are one row when they overlap in height by ROW_OVERLAP of the
# shorter, the gap between them is under ROW_GAP of the taller's height, and the taller is under
# ROW_RATIO times the shorter
ROW_OVERLAP, ROW_GAP, ROW_RATIO = 0.4, 1.0, 1.8
BLANK = 0  # the CTC blank class; digit d is class d + 1
CLASSES = 11  # a step's classes: the blank and 0-9


@dataclass
class Strip:
    """One row cut out level: its darkness and where it came from in the frame."""

    image: np.ndarray  # uint8 STRIP_HW, ink darkness (0 paper, 255 the row's darkest ink)
    x0: float  # the frame column of the strip's left edge
    x1: float  # the frame column of its right edge (a long row is squeezed across to fit)
    centre: float  # the row's centre line, frame row at column 0 ...
    slope: float  # ... and its tilt (frame rows per column)
    half: float  # half the strip's height, frame pixels
    across: float  # frame columns per strip column

    def holds(self, x: float, y: float) -> bool:
        """Whether frame point (x, y) lies in the strip."""
        return self.x0 <= x <= self.x1 and abs(y - (self.centre + self.slope * x)) <= self.half


@dataclass
class RowText:
    """What a row reader read in one strip."""

    text: str  # the digits, left to right
    confidence: list[float]  # each digit's probability, at its surest step
    steps: list[int]  # each digit's surest step (steps run left to right along the strip)


def rows(boxes: list[Box]) -> list[list[Box]]:
    """Boxes -> rows of boxes, each left to right, the rows left to right too: taken left to right,
    a box continues the row of the box before it when the two overlap in height by ROW_OVERLAP of the
    shorter, lie within ROW_GAP of the taller's height and differ in size by under ROW_RATIO; else
    it starts a row. A row never reaches over another row's box, so reading the rows in turn reads
    the frame left to right."""
    out: list[list[Box]] = []
    usable = [b for b in boxes if np.isfinite([b.x, b.y, b.w, b.h]).all() and b.w > 0 and b.h > 0]
    for b in sorted(usable, key=lambda b: b.x + b.w / 2):
        if out:
            p = out[-1][-1]
            overlap = min(p.y + p.h, b.y + b.h) - max(p.y, b.y)
            tall, short = max(p.h, b.h), max(min(p.h, b.h), 1e-6)
            if overlap >= ROW_OVERLAP * short and b.x - (p.x + p.w) <= ROW_GAP * tall \
                    and tall <= ROW_RATIO * short:
                out[-1].append(b)
                continue
        out.append([b])
    return out


def strip(grey: np.ndarray, row: list[Box]) -> Strip:
    """A uint8 HxW frame and one row's boxes -> the row's Strip: the band along the line through the
    boxes' centres, HALF_HEIGHT tallest-box heights either side, cut out level, scaled to STRIP_HW's
    height (a row longer than its width squeezed into it, the rest filled with paper), its paper
    divided out and its darkness scaled to the row's ink."""
    sh, sw = STRIP_HW
    cx = np.array([b.x + b.w / 2 for b in row])
    cy = np.array([b.y + b.h / 2 for b in row])
    tallest = max(b.h for b in row)
    slope = 0.0
    if len(row) >= 2 and np.ptp(cx) > tallest:
        slope = float(np.clip(np.polyfit(cx, cy, 1)[0], -MAX_SLOPE, MAX_SLOPE))
    centre = float(np.mean(cy - slope * cx))
    x0 = min(b.x for b in row) - MARGIN * tallest
    x1 = max(b.x + b.w for b in row) + MARGIN * tallest
    half = HALF_HEIGHT * tallest
    sy = 2 * half / sh  # frame pixels per strip pixel, down ...
    sx = max(sy, (x1 - x0) / sw)  # ... and across
    img = grey.astype(np.float32)
    halved = 0
    while min(sx, sy) / 2 ** halved > MAX_SHRINK and halved < 4:  # no bilinear step skips pixels
        img = cv2.pyrDown(img)
        halved += 1
    # strip (u, v) <- frame (x0 + u sx, centre + slope x - half + v sy), in the halved frame's pixels
    m = np.array([[sx, 0.0, x0], [slope * sx, sy, centre + slope * x0 - half]], np.float32) / 2 ** halved
    width = int(min(sw, np.ceil((x1 - x0) / sx)))
    band = cv2.warpAffine(img, m, (width, sh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    k = max(3, int(round(sh * PAPER_SPAN)) | 1)
    paper = cv2.blur(cv2.dilate(band, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))), (k, k))
    dark = np.clip(1.0 - band / np.maximum(paper, 1.0), 0.0, 1.0)
    dark = np.clip(dark / max(float(np.percentile(dark, 99.5)), DARK_FLOOR), 0.0, 1.0)
    out = np.zeros(STRIP_HW, np.uint8)
    out[:, :width] = (dark * 255).astype(np.uint8)
    return Strip(out, x0, x1, centre, slope, half, sx)


def decode(logits: np.ndarray) -> list[RowText]:
    """N x steps x CLASSES logits -> each strip's RowText: the likeliest class at each step, repeats
    merged and blanks dropped (CTC's greedy decoding)."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    best = p.argmax(-1)
    out = []
    for n in range(len(best)):
        text, conf, steps, prev = [], [], [], BLANK
        for t, k in enumerate(best[n]):
            if k != BLANK and k == prev:
                if p[n, t, k] > conf[-1]:
                    conf[-1], steps[-1] = float(p[n, t, k]), t
            elif k != BLANK:
                text.append(str(int(k) - 1))
                conf.append(float(p[n, t, k]))
                steps.append(t)
            prev = k
        out.append(RowText("".join(text), conf, steps))
    return out


class RowReader:
    """Loads a row-reader .tflite or .onnx file (`mnist-edge rows`); `read(grey, boxes)` -> the
    frame's digits, row by row."""

    def __init__(self, model: str | Path, runtime: str | None = None, threads: int | None = 1,
                 flag: str = "--rows"):
        self.path = Path(model)
        self.backend = open_flagged(model, runtime, threads, flag)
        spec, out = self.backend.input, self.backend.output
        if tuple(spec.shape[1:]) != (*STRIP_HW, 1) or len(out.shape) != 3 or out.shape[-1] != CLASSES:
            raise UserError(f"{flag} {model}: not a row reader (its input is {list(spec.shape)} and its "
                            f"output {list(out.shape)}; a row reader reads a N x {STRIP_HW[0]} x "
                            f"{STRIP_HW[1]} x 1 strip into N x steps x {CLASSES} logits; `mnist-edge rows` "
                            "makes one)")
        check_scales(self.backend, flag, model, "the .onnx row reader or another runtime")
        self._lut = pixel_lut(spec)

    def logits(self, image: np.ndarray) -> np.ndarray:
        """One strip's image (uint8 STRIP_HW) -> the network's float logits, steps x CLASSES."""
        y = self.backend.run(cv2.LUT(image, self._lut)[None, :, :, None])[0]
        return dequantize(y, self.backend.output)

    def read(self, grey: np.ndarray, boxes: list[Box]) -> list[tuple[list[Box], list[tuple]]]:
        """A uint8 HxW frame and the locator's boxes in it -> each row (`rows`) with its digits, left
        to right: (x, y, w, h, digit, probability), its box the located box it lies in, else one the
        row's height centred where the network read it. A digit read where another row's box is
        (a strip's margin reaching the next digit of a line whose boxes alternate with another
        line's) is left to that row."""
        out = []
        grouped = rows(boxes)
        for row in grouped:
            others = [b for r in grouped if r is not row for b in r]
            s = strip(grey, row)
            logits = self.logits(s.image)
            read = decode(logits[None])[0]
            tall = s.half / HALF_HEIGHT
            used: set[int] = set()
            digits = []
            for ch, p, t in zip(read.text, read.confidence, read.steps, strict=True):
                x = s.x0 + (t + 0.5) * STRIP_HW[1] / len(logits) * s.across
                y = s.centre + s.slope * x
                k = next((k for k, b in enumerate(row) if k not in used and b.x <= x <= b.x + b.w), None)
                if k is None and any(b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h for b in others):
                    continue
                if k is None:
                    box = (x - 0.35 * tall, y - tall / 2, 0.7 * tall, tall)
                else:
                    used.add(k)
                    box = (row[k].x, row[k].y, row[k].w, row[k].h)
                digits.append((*box, int(ch), p))
            out.append((row, digits))
        return out


def open_rows(rows_flag: str | None, locator: Path | None, model: Path, runtime: str | None = None,
              threads: int | None = 1) -> RowReader | None:
    """camera's and predict's row reader: --rows as given, else the shipped one (`resolve_rows`);
    None without a locator (segmentation's digits are read one by one) or with --rows none."""
    from edge.models import NO_ROWS, resolve_rows

    if locator is None:
        if rows_flag not in (None, NO_ROWS):
            raise UserError(f"--rows {rows_flag}: reads the rows the locator finds; there is no locator "
                            "(--locator none, or none shipped)")
        return None
    path = resolve_rows(rows_flag, model, runtime)
    if path is None:
        return None
    return RowReader(path, runtime, threads, flag="the shipped row reader" if rows_flag is None else "--rows")
