"""Frame -> reading: THE one path from a picture to the digits on it, for camera, predict and bench.

    >>> import cv2, numpy as np
    >>> from edge.classifier import Classifier
    >>> from edge.reader import read
    >>> frame = np.full((480, 640, 3), 200, np.uint8)
    >>> _ = cv2.putText(frame, "42", (200, 320), cv2.FONT_HERSHEY_SIMPLEX, 6, (40, 40, 40), 20)
    >>> read(frame, Classifier("models/model_int8.tflite")).text
    '42'

to_grey (colour order handled there only) -> the digits found: with a `locator` (what camera and
predict pass by default) its boxes, each box's ink cropped (`edge.located`), else
`edge.digits.segment` (paper, lines and ink, digit crops); a frame noisier than the locator learned
is median-filtered and segmented either way, and a frame of light ink on dark paper (the locator
learned dark ink only) is located inverted -> ONE batched Classifier call -> pieces too wide for
one digit are tried as two -> digits under `min_confidence` dropped. With a row reader (`edge.rows`,
what camera and predict pass by default when one is shipped) the located boxes are not cropped:
each row of them is read whole, and its digits under `min_confidence` dropped. A 28x28 image is
taken as one MNIST-style digit.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from edge.classifier import Classifier, Prediction
from edge.crops import DigitCrop
from edge.digits import SegmentConfig, quiet, segment, to_frame, to_grey, working
from edge.ink import coarse, dark_ink
from edge.located import located_crops
from edge.locator import Box, Locator
from edge.rows import RowReader

log = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.6  # digits less sure than this are dropped: the default of camera and predict
ROW_SURE = 0.9  # a row the row reader reads less sure than this in any digit is also read from its
#   crops, and the surer reading kept (docs/desk-reading.md, "Reading a row whole")
LOCATED, SEGMENTED, NOISY, LIGHT, ONE = ("locator", "segmentation", "segmentation: noisy frame",
                                         "locator: light ink", "one digit")
FOUND_BY = (LOCATED, SEGMENTED, NOISY, LIGHT, ONE)  # how a frame's digits were looked for: with the
#   locator; by segmentation (no locator given); by segmentation because the frame was noisier than
#   the locator learned (median-filtered first); with the locator, in the frame inverted, because it
#   held light ink on dark paper; a 28x28 image as one


@dataclass
class Digit:
    """One digit read in a frame."""

    digit: int  # the class index
    label: str  # its label from the model's metadata
    confidence: float  # its probability, rounded to 4 decimals (what is printed is what is judged)
    box: tuple[int, int, int, int]  # x, y, w, h in the frame's pixels


@dataclass
class Reading:
    """What one frame says, left to right, with where the time went."""

    digits: list[Digit] = field(default_factory=list)
    segment_ms: float = 0.0  # finding and cropping the digits: to_grey, the locator or segment, crops
    classify_ms: float = 0.0  # every Classifier call, splits included
    found_by: str = SEGMENTED  # how the digits were looked for: one of FOUND_BY

    @property
    def text(self) -> str:
        return "".join(d.label for d in self.digits)

    def to_dict(self) -> dict:
        """{"reading", "digits": [{"digit", "confidence", "box"}], "found_by"}, as printed by camera
        and predict."""
        return {"reading": self.text,
                "digits": [{"digit": d.digit, "confidence": d.confidence, "box": list(d.box)}
                           for d in self.digits],
                "found_by": self.found_by}


def find_digits(image: np.ndarray, color_order: str = "bgr",
                seg: SegmentConfig | None = None) -> list[DigitCrop]:
    """A 28x28 image is one MNIST-style digit (inverted if its border is light); else `segment`."""
    return look(image, None, color_order, seg)[0]


def locate_digits(image: np.ndarray, locator: Locator, color_order: str = "bgr",
                  seg: SegmentConfig | None = None) -> list[DigitCrop]:
    """The locator's boxes -> one crop per located digit (`edge.located`), left to right; a 28x28
    image is one MNIST-style digit, and a frame noisier than the locator learned is segmented, as in
    `find_digits`; a frame of light ink is located inverted."""
    return look(image, locator, color_order, seg)[0]


def look(image: np.ndarray, locator: Locator | None, color_order: str = "bgr",
         seg: SegmentConfig | None = None) -> tuple[list[DigitCrop], str]:
    """(the digit crops, which of FOUND_BY found them): `find_digits` without a locator,
    `locate_digits` with one."""
    crops, found_by, _ = _look(image, locator, color_order, seg, crop=True)
    return crops, found_by


@dataclass
class Located:
    """Where the locator found the digits: what a row reader reads them from, and their crops."""

    grey: np.ndarray  # the grey image the boxes are in: the frame (maybe inverted), or `work`
    boxes: list[Box]  # the locator's boxes in it
    work: np.ndarray  # the working image crops are cut from (`edge.digits.working`)
    scale: float  # frame pixels -> the working image's
    cfg: SegmentConfig

    @property
    def inv(self) -> float:
        """`grey`'s pixels -> the frame's."""
        return 1.0 / self.scale if self.grey is self.work else 1.0

    def crops(self, boxes: list[Box]) -> list[DigitCrop]:
        """These of its boxes' crops (`edge.located`), in frame pixels."""
        if self.grey is self.work:  # located in the working image itself
            return [to_frame(c, self.inv) for c in located_crops(self.work, boxes, self.cfg, dark=True)]
        if self.scale == 1.0:
            return located_crops(self.work, boxes, self.cfg, dark=True)
        k = self.scale
        scaled = [Box(b.x * k, b.y * k, b.w * k, b.h * k, b.score) for b in boxes]
        return [to_frame(c, 1.0 / k) for c in located_crops(self.work, scaled, self.cfg, dark=True)]


def _look(image: np.ndarray, locator: Locator | None, color_order: str, seg: SegmentConfig | None,
          crop: bool) -> tuple[list[DigitCrop], str, Located | None]:
    """`look`, and where the locator's boxes are (None when it was not used); `crop`: cut each
    located box's crop (a row reader does without)."""
    grey = to_grey(image, color_order)
    if grey.shape == (28, 28):
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        return [DigitCrop(box=(0, 0, 28, 28), image=255 - grey if border.mean() > 127 else grey)], ONE, None
    cfg = seg or SegmentConfig()
    filtered, noisy = quiet(grey, cfg)
    if locator is None:
        return segment(filtered, cfg), SEGMENTED, None
    if noisy:
        log.debug("a frame noisier than the locator learned: segmented")
        return segment(filtered, cfg), NOISY, None
    work, scale = working(grey, cfg)
    found_by = LOCATED
    if not dark_ink(work, coarse(work, cfg), cfg):
        log.debug("light ink, which the locator never learned: located in the inverted frame")
        grey, work, found_by = np.invert(grey), np.invert(work), LIGHT
    if scale < 1.0:  # located in the working image: shrunk once more, not the whole frame again
        where = Located(work, locator.locate(work), work, scale, cfg)
    else:
        where = Located(grey, locator.locate(grey), work, scale, cfg)
    return (where.crops(where.boxes) if crop else []), found_by, where


def read(image: np.ndarray, clf: Classifier, min_confidence: float = MIN_CONFIDENCE,
         color_order: str = "bgr", seg: SegmentConfig | None = None,
         locator: Locator | None = None, rows: RowReader | None = None) -> Reading:
    """One image (any layout `to_grey` takes) -> its Reading. Digits are found by segmentation
    (`find_digits`), or with a `locator` where it says they are (`locate_digits`); with a `rows`
    reader too, the located digits are read a row at a time (`edge.rows`) rather than one crop each
    (the classifier still reads what segmentation finds)."""
    t0 = time.perf_counter()
    crops, found_by, where = _look(image, locator, color_order, seg, crop=rows is None)
    t1 = time.perf_counter()
    if rows is not None and where is not None:
        digits = _read_rows(where, rows, clf, min_confidence, seg or SegmentConfig(), np.shape(image)[:2])
        return Reading(digits, 1e3 * (t1 - t0), 1e3 * (time.perf_counter() - t1), found_by)
    found = _classified(crops, clf, seg or SegmentConfig())
    t2 = time.perf_counter()
    return Reading(_sure(found, min_confidence), 1e3 * (t1 - t0), 1e3 * (t2 - t1), found_by)


def _classified(crops: list[DigitCrop], clf: Classifier,
                cfg: SegmentConfig) -> list[tuple[DigitCrop, Prediction]]:
    """Crops -> (crop, prediction) pairs: ONE batched Classifier call, then wide pieces tried as two."""
    if not crops:
        return []
    preds = clf.classify(np.stack([c.image for c in crops]))
    return _split_wide(list(zip(crops, preds, strict=True)), clf, cfg)


def _sure(found: list[tuple[DigitCrop, Prediction]], min_confidence: float) -> list[Digit]:
    """The classified crops at least `min_confidence` sure (rounded as printed), as Digits."""
    return [Digit(p.digit, p.label, round(p.confidence, 4), c.box) for c, p in found
            if round(p.confidence, 4) >= min_confidence]


def _read_rows(where: Located, rows: RowReader, clf: Classifier, min_confidence: float,
               cfg: SegmentConfig, frame_hw: tuple) -> list[Digit]:
    """Each row of located boxes read whole. A row the reader is less than ROW_SURE of in any digit
    is also read from its boxes' crops, as without a row reader, and that reading is taken when its
    least sure digit is surer than the row reader's (no crop at all: surer than any)."""
    k = where.inv  # the row reader's boxes are in the located image's pixels
    digits = []
    for row, said in rows.read(where.grey, where.boxes):
        least = min((p for *_, p in said), default=1.0)
        if least < ROW_SURE:
            found = _classified(where.crops(row), clf, cfg)
            if min((p.confidence for _, p in found), default=1.0) > least:
                digits += _sure(found, min_confidence)
                continue
        digits += [Digit(d, clf.labels[d], round(p, 4), _in_frame(x, y, w, h, k, frame_hw))
                   for x, y, w, h, d, p in said if round(p, 4) >= min_confidence]
    return digits


def _in_frame(x: float, y: float, w: float, h: float, k: float, hw: tuple) -> tuple[int, int, int, int]:
    """A box in the located image's pixels -> in the frame's (times `k`), cut to the frame `hw`."""
    x0, y0 = min(max(0, int(x * k)), hw[1] - 1), min(max(0, int(y * k)), hw[0] - 1)
    x1, y1 = min(hw[1], math.ceil((x + w) * k)), min(hw[0], math.ceil((y + h) * k))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def _split_wide(found: list[tuple[DigitCrop, Prediction]], clf: Classifier,
                cfg: SegmentConfig) -> list[tuple[DigitCrop, Prediction]]:
    """Pieces wide enough to be two touching digits are tried cut at their thinnest columns (one
    batched call for every half); the cut whose less sure half is surest wins, and is kept only
    if that half is surer than `split_confidence` and than the whole piece was."""
    halves = [h for c, _ in found for pair in c.splits for h in pair]
    if not halves:
        return found
    preds = iter(clf.classify(np.stack([h.image for h in halves])))
    out: list[tuple[DigitCrop, Prediction]] = []
    for crop, whole in found:
        best, best_conf = None, max(cfg.split_confidence, whole.confidence)
        for left, right in crop.splits:
            pl, pr = next(preds), next(preds)
            if min(pl.confidence, pr.confidence) >= best_conf:
                best, best_conf = [(left, pl), (right, pr)], min(pl.confidence, pr.confidence)
        out.extend(best or [(crop, whole)])
    return out
