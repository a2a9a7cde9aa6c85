"""Located boxes + the frame's ink -> one MNIST-style crop per located digit.

    >>> import cv2, numpy as np
    >>> from edge.located import located_crops
    >>> from edge.locator import Box
    >>> grey = np.full((480, 640), 200, np.uint8)
    >>> _ = cv2.putText(grey, "4", (200, 320), cv2.FONT_HERSHEY_SIMPLEX, 6, 40, 20)
    >>> ys, xs = np.nonzero(grey < 120)                          # the "4"'s own pixels
    >>> (crop,) = located_crops(grey, [Box(190, 180, 130, 150, 0.9)])  # a box near them
    >>> int(np.abs(np.subtract(crop.box, (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1))).max()) <= 2
    True

The locator says where each digit is; the ink says exactly which pixels are its strokes. Each box
claims the ink in its own region (the box with a margin) that lies nearer its centre than any other
box's, so two touching digits are cut between their centres; pieces of that ink are kept when they
reach into the box's middle or lie mostly inside it, so a ruled line's stub or a neighbour's tail at
the margin is dropped while a faint digit broken into pieces stays whole. A box whose ink is wide
enough to be two touching digits (the locator boxed the pair as one) carries the ways to cut it in
two, as segmentation's pieces do; the reader keeps a cut only if both halves read surely. Each
box's ink is found against its own paper with its own threshold, so very faint pencil in one box and
marker in the next both read.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import cv2
import numpy as np

from edge.crops import DigitCrop, crop_ink
from edge.digits import SegmentConfig
from edge.fast import MAD_SIGMA, by_label, deviations, median_of_counts
from edge.ink import coarse, dark_ink, remove_lines
from edge.locator import Box

MARGIN = 0.3  # a box's region: the box grown by this fraction of its height on every side; at 0.15
#   a region is mostly its digit, leaves its paper and threshold too little paper to judge from, and
#   faint stroke ends were lost (6 points fewer desk frames read exactly with a locator's boxes)
INSIDE = 0.5  # a piece of ink is the digit's if this share of it lies inside the box...
MIDDLE = 0.25  # ...or it reaches the box's middle (the box shrunk by this fraction per side)
PAPER_KERNEL = 0.4  # the paper's closing kernel, x the box height: wider than a digit's strokes and
#   where they cross (0.25 ate the middle of big, thick digits; 0.5 lets a shadow's edge pass as ink)
PAPER_FLOOR = 0.65  # ...and never darker than this x a closing twice as wide: a fat marker digit
#   wider than the kernel outlasts the first closing and would pass for paper, leaving its body out
#   of the ink (a blob "6" read as "1"; clean frames 95.0 -> 96.3 % exact, desk unchanged); a hand's
#   shadow is lighter than that (at 0.85 desk frames lost 1.6 points)
PAPER_HEIGHT = 32  # the paper is found on the region shrunk so its box is at most this many px tall:
#   smooth anyway, and a 200-px digit then costs what a 32-px one does (at 48 the paper's closings
#   were a fifth of a box's time; each desk and clean set read within four frames of 300 as before)
MIN_CONTRAST = 0.06  # ink is at least this much darker than its paper...
NOISE_MADS = 3.0  # ...and this many noise deviations (from the region's median absolute deviation)
CROP_HEIGHT = 80  # a box's region is shrunk so the box is at most this many px tall before its ink is
#   found: the 20-px MNIST crop needs no more, and a 200-px digit then costs what an 80-px one does
#   (clean frames 88 -> 122 frames/s with the locator; desk frames 82.0 -> 83.3 % exact, as noise
#   at full size no longer passes for stroke detail; at 64 px thin pencil on lined paper is lost)
SPLIT_ASPECT = 1.0  # a located crop this wide (x its height) is also tried as two touching digits:
#   the locator most often misses a narrow "1" touching its neighbour, a pair about as wide as tall
#   (segmentation's 1.1 left them whole; desk frames read exactly, seeds 0-4: 90.0 / 86.7 / 83.7 /
#   85.3 / 79.7 -> 90.0 / 86.7 / 84.7 / 86.0 / 80.3 %, clean seeds 0-1 unchanged; 0.9 and 0.95 no
#   better; splitting whatever halves read surely, without beating the whole, lost 2-12 points)
LINE_SPAN = 0.9  # a run of ink across this share of the region's width (height) is a ruled line
LINE_SHEARS = np.linspace(-0.15, 0.15, 13)  # tilts (rise per pixel, up to ~8.5 deg) tried for the
#   printed lines of a region: 0.025 apart, under two pixels at the edges of a 150-px-wide region
STEEPEST = float(np.abs(LINE_SHEARS).max())  # the steepest of them (how far a tilted row reaches)
LINE_QUANTILE = 0.25  # a row (along its tilt) whose darkness this far up its sorted values is dark is
#   a printed line, and that much darkness is taken off the row: a digit's stroke never covers three
#   quarters of its region's row, a line crosses it all
LINE_MIN = 12  # ...when it is at least this much darker (of 255) than the region's median row: plain
#   paper keeps its darkness (unlining every row cost plain paper 1-2 frames in 100)


def located_crops(work: np.ndarray, boxes: list[Box], cfg: SegmentConfig | None = None,
                  dark: bool | None = None) -> list[DigitCrop]:
    """grey uint8 HxW and the boxes located in it (same pixels) -> one crop per box that holds ink,
    left to right. Boxes are taken as given: the locator's score decided they are digits. `dark`:
    whether the ink is darker than the paper (None: decided here, `edge.ink.dark_ink`)."""
    cfg = cfg or SegmentConfig()
    if not boxes:
        return []
    H, W = work.shape
    if not (dark_ink(work, coarse(work, cfg), cfg) if dark is None else dark):
        work = cv2.bitwise_not(work)
    lined = replace(cfg, line_len_frac=LINE_SPAN)  # a box's lines are judged against its region
    judged = replace(cfg, faint_level=0.0, split_aspect=SPLIT_ASPECT)  # faint ink passes the usual
    #   edge test: the locator's score already judged these boxes digits (the stricter one cost desk
    #   frames here)
    centres = np.array([(b.x + b.w / 2, b.y + b.h / 2, max(b.w, 1.0), max(b.h, 1.0)) for b in boxes])
    crops = []
    for k, b in enumerate(boxes):
        pad = MARGIN * b.h
        x0, y0 = max(0, int(b.x - pad)), max(0, int(b.y - pad))
        x1, y1 = min(W, int(b.x + b.w + pad) + 1), min(H, int(b.y + b.h + pad) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        s = min(1.0, CROP_HEIGHT / max(b.h, 1.0))  # the region's own scale (CROP_HEIGHT)
        region = work[y0:y1, x0:x1]
        if s < 1.0:
            region = cv2.resize(region, (max(8, round((x1 - x0) * s)), max(8, round((y1 - y0) * s))),
                                interpolation=cv2.INTER_AREA)
        sx, sy = region.shape[1] / (x1 - x0), region.shape[0] / (y1 - y0)
        local = centres - (x0, y0, 0, 0)
        local *= (sx, sy, sx, sy)
        lb = Box(*local[k, :2] - local[k, 2:] / 2, *local[k, 2:], b.score)
        dark, ink, level = _local_ink(region, lb.h, lined)
        ink &= _nearest(local, k, 0, 0, region.shape[1], region.shape[0])
        crop = crop_ink(_pieces(ink, lb, 0, 0), dark, level, (0, 0), judged)
        if crop is not None:
            crops.append(_in_frame(crop, x0, y0, sx, sy))
    return crops


def _in_frame(c: DigitCrop, x0: int, y0: int, sx: float, sy: float) -> DigitCrop:
    """A crop boxed in its region's pixels (top-left x0, y0 in the frame, scaled by sx, sy) -> the
    same crop, and its splits, boxed in the frame's pixels (as `edge.digits.to_frame`)."""
    x, y, w, h = c.box
    fx, fy = x0 + int(x / sx), y0 + int(y / sy)
    return DigitCrop((fx, fy, x0 + math.ceil((x + w) / sx) - fx, y0 + math.ceil((y + h) / sy) - fy), c.image,
                     [(_in_frame(a, x0, y0, sx, sy), _in_frame(b, x0, y0, sx, sy)) for a, b in c.splits])


def _local_ink(region: np.ndarray, height: float, cfg: SegmentConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """A box's region (dark ink) -> (darkness 0..255 against its own paper, ink bool, threshold);
    `cfg.line_len_frac` is the region's LINE_SPAN.

    The paper is a closing of the region with a kernel wider than any pen stroke of a digit this
    tall: strokes vanish from it, a shadow's edge does not, so shadows divide out; a stroke fatter
    than the kernel is caught by a floor from a closing twice as wide (`PAPER_FLOOR`). The threshold is
    Otsu's between the region's noise floor and `max_threshold`; ruled or grid lines crossing the
    whole region are removed (`edge.ink.remove_lines`, a stroke crossing one re-joined)."""
    region = cv2.GaussianBlur(region, (3, 3), 0)  # sensor noise out of the paper's maxima
    s = min(1.0, PAPER_HEIGHT / height)
    small = region if s == 1.0 else cv2.resize(
        region, (max(3, round(region.shape[1] * s)), max(3, round(region.shape[0] * s))),
        interpolation=cv2.INTER_AREA)
    k = max(5, int(PAPER_KERNEL * height * s) | 1)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    wide = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((2 * k + 1,) * 2, np.uint8))
    paper = np.maximum(paper, (PAPER_FLOOR * wide).astype(np.uint8))
    if s < 1.0:
        paper = cv2.resize(paper, region.shape[::-1], interpolation=cv2.INTER_LINEAR)
    dark = cv2.divide(cv2.subtract(paper, region), cv2.max(paper, 40), scale=255)
    if cfg.remove_lines:
        dark = np.ascontiguousarray(_unline(np.ascontiguousarray(_unline(dark).T)).T)
    counts = cv2.calcHist([dark], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    med = median_of_counts(counts)
    mad = median_of_counts(deviations(counts, med))
    floor = max(255 * MIN_CONTRAST, med + NOISE_MADS * MAD_SIGMA * mad)
    otsu, _ = cv2.threshold(dark, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    level = float(min(max(otsu, floor), max(floor, 255 * cfg.max_threshold)))
    mask = cv2.threshold(dark, level, 255, cv2.THRESH_BINARY)[1]
    if cfg.close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((cfg.close_px,) * 2, np.uint8))
    if cfg.remove_lines:
        mask = remove_lines(mask, cfg, dark=dark)
    return dark, mask > 0, level


def _unline(dark: np.ndarray) -> np.ndarray:
    """Darkness (uint8, C-contiguous) minus its printed horizontal lines, before any threshold.

    A faint pencil digit on squared paper is often no darker than the grid, so no threshold parts
    them, but their shapes do: a printed line crosses the whole region at one tilt. The tilt is the
    one whose rows' darkness varies most (column strips shifted, LINE_SHEARS); along it, each
    row's LINE_QUANTILE darkness is the line's own, and it is taken off that row where it stands
    LINE_MIN above the median row. A stroke crossing a line keeps what it has beyond the line."""
    h, w = dark.shape
    kth = int(LINE_QUANTILE * (w - 1))
    if min(h, w) < 8 or not _may_hold_line(dark, w - kth):
        return dark
    k = max(4, w // 8)  # column strips for the tilt search
    base, pad = _strip_index(w, k)
    index = base + k * np.arange(h)  # (tilts, k, h): where each tilt reads each strip's h rows
    strips = cv2.resize(np.ascontiguousarray(dark[:, :k * (w // k)]), (k, h), interpolation=cv2.INTER_AREA)
    strips = cv2.copyMakeBorder(strips, pad, pad, 0, 0, cv2.BORDER_REPLICATE)
    sums = strips.ravel()[index].sum(axis=1, dtype=np.float64)  # (tilts, h): each tilt's row sums
    sums -= sums.mean(axis=1, keepdims=True)
    t = float(LINE_SHEARS[int(np.argmax(np.einsum("ij,ij->i", sums, sums)))])  # the tilt whose row sums
    #   vary most
    m = np.float32([[1, 0, 0], [t, 1, -t * w / 2]])  # (x, y) -> (x, y + t (x - w/2))
    flat = cv2.warpAffine(dark, m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)  # the lines made level
    line = _row_order(flat, kth).astype(np.int16)
    line -= np.sort(line)[h // 2]  # the median row
    line[line < LINE_MIN] = 0
    if not line.any():
        return dark
    lines = np.repeat(line.astype(np.uint8)[:, None], w, axis=1)
    lines = cv2.warpAffine(lines, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return cv2.subtract(dark, lines)


def _may_hold_line(dark: np.ndarray, need: int) -> bool:
    """Could `_unline` find a line in `dark`? False only when it would not: a row along any tilt of
    LINE_SHEARS whose LINE_QUANTILE darkness stands LINE_MIN above the median row's (which is >= 0)
    has `need` pixels at least LINE_MIN dark, each within the row's reach of its middle (the tilt
    times half the width, and a pixel of rounding); so some band of that many rows must have `need`
    columns holding such a pixel. A few cheap passes, where the tilt search costs tens of them: most
    regions on plain paper need no search at all."""
    reach = math.ceil(STEEPEST * dark.shape[1] / 2) + 1
    inked = cv2.threshold(dark, LINE_MIN - 1, 1, cv2.THRESH_BINARY)[1]  # dark >= LINE_MIN
    band = cv2.dilate(inked, np.ones((2 * reach + 1, 1), np.uint8))  # any such pixel within reach
    return int(cv2.reduce(band, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).max()) >= need


def _row_order(a: np.ndarray, kth: int) -> np.ndarray:
    """Each row's kth smallest value (np.partition's): rows over 56 wide sorted by OpenCV, where
    numpy's select turns several times slower (31 against 97 us for 90 rows of 100; 22 against 41
    at 60), numpy's below that (10 against 18 us at 48)."""
    if a.shape[1] > 56:
        return cv2.sort(a, cv2.SORT_EVERY_ROW | cv2.SORT_ASCENDING)[:, kth]
    return np.partition(a, kth, axis=1)[:, kth]


@functools.lru_cache(maxsize=1024)
def _strip_index(w: int, k: int) -> tuple[np.ndarray, int]:
    """For k column strips of a region w wide, their profiles padded by `pad` rows at either end (an
    (h + 2 pad) x k array): (where in it, flattened, each tilt of LINE_SHEARS reads each strip's
    first row (tilts x k x 1; row y is k y further on); pad)."""
    centres = (np.arange(k) + 0.5) * (w / k) - w / 2
    shift = np.rint(LINE_SHEARS[:, None] * centres[None, :]).astype(np.intp)  # (tilts, k)
    pad = int(np.abs(shift).max())
    return ((shift + pad) * k + np.arange(k))[:, :, None], pad


def _nearest(centres: np.ndarray, k: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """bool mask of the region's pixels nearer box k's centre than any other's (in box sizes)."""
    cx, cy, w, h = centres[k]
    own = np.ones((y1 - y0, x1 - x0), bool)
    near = [(ox, oy, ow, oh) for j, (ox, oy, ow, oh) in enumerate(centres)
            if j != k and abs(ox - cx) < 2 * (w + ow) and abs(oy - cy) < 2 * (h + oh)]
    if not near:  # a box with no neighbour owns its whole region
        return own
    xs, ys = np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64)
    for ox, oy, ow, oh in near:  # nearer k: dx_k^2 - dx_o^2 <= dy_o^2 - dy_k^2, a row against a column
        own &= (((xs - cx) / w) ** 2 - ((xs - ox) / ow) ** 2)[None, :] <= \
            (((ys - oy) / oh) ** 2 - ((ys - cy) / h) ** 2)[:, None]
    return own


def _pieces(ink: np.ndarray, b: Box, x0: int, y0: int) -> np.ndarray:
    """The connected pieces of `ink` (a region whose top-left is x0, y0) that belong to box b."""
    n, lab, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        ink.view(np.uint8), 8, cv2.CV_16U, cv2.CCL_GRANA)  # pieces as sets: any labelling does
    if n <= 1:
        return np.zeros_like(ink)
    bx0, by0, bx1, by1 = b.x - x0, b.y - y0, b.x + b.w - x0, b.y + b.h - y0
    mx, my = MIDDLE * b.w, MIDDLE * b.h
    mid = lab[max(0, int(by0 + my)):max(0, int(by1 - my)) + 1,
              max(0, int(bx0 + mx)):max(0, int(bx1 - mx)) + 1]
    keep = np.bincount(mid.ravel(), minlength=n) > 0
    inside = lab[max(0, int(by0)):max(0, int(by1)) + 1, max(0, int(bx0)):max(0, int(bx1)) + 1]
    counts = np.bincount(inside.ravel(), minlength=n)
    keep |= counts >= INSIDE * stats[:, cv2.CC_STAT_AREA]
    keep[0] = False
    return by_label(lab, keep.view(np.uint8)).view(bool)
