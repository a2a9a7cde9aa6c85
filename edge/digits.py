"""Camera frame -> MNIST-style 28x28 digits, read left to right. numpy + OpenCV, no TensorFlow.

    >>> import cv2, numpy as np
    >>> from edge.digits import segment, to_grey
    >>> frame = np.full((480, 640, 3), 200, np.uint8)               # light paper, OpenCV BGR
    >>> _ = cv2.putText(frame, "42", (200, 320), cv2.FONT_HERSHEY_SIMPLEX, 6, (40, 40, 40), 20)
    >>> crops = segment(to_grey(frame, "bgr"))
    >>> len(crops), crops[0].image.shape, crops[0].box[0] < crops[1].box[0]
    (2, (28, 28), True)

`segment` thresholds a "darkness" map, (paper - pixel) / paper, where the paper is a closing of a
1/16-scale copy: uneven lighting divides out (`edge.ink`, which also removes ruled lines), groups
the ink's pieces into digits, and makes each one's crop from that soft map, not the binary mask,
because MNIST digits are anti-aliased (`edge.crops`). A few ms per 640x480 frame on one x86 core
(`python -m benchmarks.frames` measures it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from edge.crops import DigitCrop, crop_ink
from edge.fast import MAD_SIGMA, median_of_counts
from edge.ink import ink_mask, remove_lines

log = logging.getLogger(__name__)

# color_order -> order of the first three channels in memory. picamera2 names formats the DRM
# way (little-endian words): its "RGB888" array is B,G,R in memory and "XRGB8888" is B,G,R,X.
_ORDERS = {
    "bgr": "bgr", "bgra": "bgr", "bgrx": "bgr", "xrgb8888": "bgr", "rgb888": "bgr",
    "rgb": "rgb", "rgba": "rgb", "rgbx": "rgb", "xbgr8888": "rgb", "bgr888": "rgb",
}


@dataclass
class SegmentConfig:
    """Knobs for `segment`. Pixel sizes are working-image pixels; fractions are of its height."""

    work_size: int = 480  # shorter side of the working image: every frame is scaled to it (smaller
    #   ones enlarged), as the pixel sizes below were tuned and measured at 640x480; read at its own
    #   320x240, a desk frame lost the thin strokes and faint ink those sizes expect
    #   (docs/desk-reading.md, "Frame size"). The shorter side, not the longer: at 640x360 a 1280x720
    #   frame's digits were 0.75x as tall as at 4:3, and 67 / 64 / 67 % of desk frames read exactly,
    #   not 72 / 69 / 73 % (seeds 0-2)
    max_enlarge: float = 2.0  # ...but enlarged at most this much: a 320x240 camera stream gets to
    #   640x480, while a 60-px photo of one digit magnified 10x is all blur (and was read as "")
    polarity: str = "auto"  # "dark" (dark ink on light paper), "light" (light on dark) or "auto"
    bg_cell: int = 16  # paper brightness is estimated on a grid of bg_cell x bg_cell pixel cells
    bg_kernel: int = 5  # closing size in cells: strokes up to ~bg_kernel*bg_cell px wide are ink
    min_contrast: float = 0.12  # ink is at least this fraction darker than the local paper
    max_threshold: float = 0.3  # cap on Otsu's threshold, so a black digit can't hide a faint one
    noise_sigmas: float = 4.0  # ink is also this many sensor-noise std-devs darker than the paper
    noisy: float = 6.5  # a frame whose pixel noise (`pixel_noise`, as a std-dev of 255) is above this
    #   is median-filtered (3x3) first and read by segmentation, not the locator, which learned no
    #   such noise (desk scenes reach 4.4; it read 35 of 100 sensor-noise frames as digits; filtered
    #   and segmented, 0 of 200), and noisy 3-digit frames read 59 of 60 (40 located, 53 segmented)
    close_px: int = 3  # closing of the ink mask, bridging 1-px breaks (0: off)
    cc_pool: int = 2  # components are found on a cc_pool x cc_pool max-pooled mask (1: off)
    max_ink_frac: float = 0.3  # more "ink" than this fraction of the frame: not a page of digits
    min_height_frac: float = 0.05  # digit box height / frame height, minimum
    max_height_frac: float = 0.9  # digit box height / frame height, maximum
    min_aspect: float = 0.08  # box width / height, minimum (a plain "1" is very narrow)
    max_aspect: float = 2.4  # box width / height, maximum (wider: a line, a smear, two digits); the
    #   widest MNIST digits are 2:1 at their faint edges and up to ~2.3 in a camera's crisper ink
    min_fill: float = 0.05  # ink pixels / box pixels, minimum (sparse specks, hairlines)
    max_fill: float = 0.95  # ink pixels / box pixels, maximum (solid blobs: shadows, stickers)
    drop_border: bool = True  # drop pieces touching the frame's edge: partly out of view
    fragment_frac: float = 0.25  # pieces this fraction of the minimum height may join a digit
    merge_gap_frac: float = 0.2  # gap allowed between stacked pieces of a digit (x taller's h)
    merge_side_gap_frac: float = 0.08  # gap allowed to a small piece beside it (x taller's h)
    merge_overlap: float = 0.4  # column overlap that makes pieces "stacked" (x narrower's w)
    merge_max_growth: float = 2.0  # merged height <= this x the taller piece (rows stay apart)
    ink_percentile: float = 90.0  # this percentile of a digit's darkness becomes 255 in its crop
    min_edge: float = 0.1  # a pen's edge is sharp: darkness rises by at least this fraction of the
    #                        ink's level per px across its outline; shadows and glare rise slowly
    faint_level: float = 75.0  # ink less than this much darker than its paper (of 255: ~30 %) is faint
    faint_edge: float = 0.14  # ...and its edges must rise this sharply instead: the edge of a hand's
    #   shadow and a grid line's stub are faint and soft (blank pages read as digits 21 -> 5 of 300;
    #   desk frames 78.7 -> 79.3 % exact but 88.0 -> 87.4 % of digits, as a soft pencil digit goes
    #   too; clean unchanged). Located boxes skip it (`edge.located`); min_edge 0 turns both off
    min_stroke: float = 2.2  # px in the 20-px digit box: thinner strokes (ballpoint, pencil) are
    #                          thickened to this, as thin as MNIST's thinnest pen
    remove_lines: bool = True  # ruled and grid lines (long, thin, straight) are not a digit's ink
    line_len_frac: float = 0.5  # ...a line spans at least this fraction of the frame's width/height
    line_band: int = 4  # px: a line may wander this much across its length (tilt, perspective)
    line_darker: float = 1.3  # ink on a line this much darker than the lines' median, joined to
    #   other ink, is a stroke written along it, and stays (desk frames 74.3 -> 78.7 % exact; blank
    #   pages as before: 10 of 300 read something, 16 if the join is not asked for)
    split_aspect: float = 1.1  # a piece at least this wide (x its height) may be two touching digits
    split_confidence: float = 0.9  # ...and is read as two when both halves are at least this sure
    split_tries: int = 3  # cuts tried per wide piece (at its thinnest columns)


def to_grey(frame: np.ndarray, color_order: str = "bgr") -> np.ndarray:
    """Any uint8 camera frame -> uint8 HxW luma (ITU-R BT.601 weights, via cv2.cvtColor).

    THE one place colour order is handled; `color_order` is the channel order *in memory*:
      - HxW (grey, or the Y plane of a YUV420 frame: picamera2's `yuv[:height]`): returned as is.
      - HxWx1: squeezed.
      - HxWx3: "bgr" for OpenCV (imread, VideoCapture) and picamera2 "RGB888" (B,G,R in memory;
        "rgb888" is accepted too); "rgb" for PIL, imageio, matplotlib and picamera2 "BGR888".
      - HxWx4: "bgra"/"bgrx"/"xrgb8888" (picamera2 "XRGB8888" is B,G,R,X in memory) or
        "rgba"/"rgbx"/"xbgr8888"; the 4th channel is ignored. "bgr"/"rgb" work here too.
    Raises ValueError for any other shape, dtype or order.
    """
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        raise ValueError(f"to_grey: expected a uint8 frame, got dtype {a.dtype} "
                         "(scale to 0..255 and convert with .astype(np.uint8) first)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return a
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"to_grey: expected HxW, HxWx1, HxWx3 or HxWx4, got shape {a.shape}")
    order = _ORDERS.get(str(color_order).lower())
    if order is None:
        raise ValueError(f"to_grey: unknown color_order {color_order!r}; one of {sorted(_ORDERS)}")
    a = np.ascontiguousarray(a)
    if a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_BGR2GRAY if order == "bgr" else cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(a, cv2.COLOR_BGRA2GRAY if order == "bgr" else cv2.COLOR_RGBA2GRAY)


def pixel_noise(grey: np.ndarray) -> float:
    """A frame's sensor noise as a std-dev (of 255): 1.4826 x the median of |frame - its 3x3 median|.
    Paper, digits and lines are flat or smooth at 3x3, so what is left is noise (and salt and pepper).

    >>> import numpy as np
    >>> pixel_noise(np.full((48, 64), 200, np.uint8))
    0.0
    """
    counts = np.bincount(cv2.absdiff(grey, cv2.medianBlur(grey, 3)).ravel(), minlength=256)
    return MAD_SIGMA * median_of_counts(counts)


def quiet(grey: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, bool]:
    """(the frame, False), or for a frame noisier than `cfg.noisy` (`pixel_noise`), (it median-filtered,
    True). Decided without the histogram: the median |frame - 3x3 median| is above the largest
    level v that `noisy` allows exactly when fewer than half the pixels (rounded up) differ by at
    most v; one threshold and a count (0.1 ms a 640x480 frame; the histogram took 0.7)."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return grey, False
    smooth = cv2.medianBlur(grey, 3)
    v = int(np.searchsorted(MAD_SIGMA * np.arange(256), cfg.noisy, side="right")) - 1
    diff = cv2.absdiff(grey, smooth)
    at_most_v = diff.size - cv2.countNonZero(cv2.threshold(diff, v, 255, cv2.THRESH_BINARY)[1])
    return (smooth, True) if at_most_v < (diff.size + 1) // 2 else (grey, False)


def to_bgr(image: np.ndarray, color_order: str) -> np.ndarray:
    """A frame as a new 3-channel BGR image, for display; same orders and table as `to_grey`."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    first = _ORDERS.get(str(color_order).lower())
    if first is None:
        raise ValueError(f"to_bgr: unknown color_order {color_order!r}; one of {sorted(_ORDERS)}")
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR if first == "bgr" else cv2.COLOR_RGBA2BGR)
    return image.copy() if first == "bgr" else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def segment(grey: np.ndarray, cfg: SegmentConfig | None = None) -> list[DigitCrop]:
    """grey uint8 HxW (see `to_grey`) -> digit crops sorted left to right; [] if none."""
    cfg = cfg or SegmentConfig()
    if not (isinstance(grey, np.ndarray) and grey.ndim == 2 and grey.dtype == np.uint8):
        raise ValueError("segment: expected a uint8 HxW array; convert frames with to_grey()")
    work, scale = working(grey, cfg)
    h, w = work.shape
    p = max(1, cfg.cc_pool)
    if min(h, w) < 16 * p:
        return []
    dark, mask, thr = ink_mask(work, cfg)
    if cfg.remove_lines:  # found on a fainter mask: a faint line is whole there, not dashes
        mask = remove_lines(mask, cfg, cv2.threshold(dark, 0.5 * thr, 255, cv2.THRESH_BINARY)[1], dark)
    ink = cv2.countNonZero(mask)
    if ink > cfg.max_ink_frac * h * w:
        log.debug("segment: %.0f%% of the frame is ink; not a page of digits", 100 * ink / (h * w))
        return []
    # Components on a max-pooled mask (OpenCV's stats pass is slow at full size); `_crop` goes
    # back to the exact full-resolution pixels.
    hp, wp = h // p, w // p
    pooled = mask if p == 1 else cv2.resize(mask[:hp * p, :wp * p], (wp, hp),
                                            interpolation=cv2.INTER_AREA)
    _, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        pooled, 8, cv2.CV_32S, cv2.CCL_GRANA)  # ~3x faster here than the default (Spaghetti)
    groups = _merge_pieces(stats[1:, :5] * [p, p, p, p, p * p], h, hp * p, wp * p, cfg)
    maps = _Maps(dark, mask, labels, p, thr)
    crops = [c for box, members in groups if (c := _crop(maps, [i + 1 for i in members], box, cfg))]
    crops.sort(key=lambda c: c.box[0] + c.box[2] / 2)
    return [to_frame(c, 1.0 / scale) for c in crops]


def working(grey: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, float]:
    """A grey frame -> (the working image, its shorter side `work_size` or the frame enlarged
    `max_enlarge` times; the scale from frame to working pixels). Shrinking halves (2x2 means) while
    it can, then interpolates (INTER_LINEAR), as enlarging does. At `work_size`, both sides are cut
    to whole `bg_cell`s."""
    H, W = grey.shape
    scale = min(cfg.work_size / max(min(H, W), 1), cfg.max_enlarge)
    work = grey
    if round(W * scale) != W or round(H * scale) != H:
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        # halved while the target is half or less (OpenCV's fast 2x2 mean; INTER_AREA by 1.5 or 2.25
        # takes its general path, 2.7 ms for a 1280x720 frame), then the rest, under 2x, interpolated
        while work.shape[1] >= 2 * size[0] and work.shape[0] >= 2 * size[1]:
            h, w = work.shape[0] // 2, work.shape[1] // 2
            work = cv2.resize(work[:2 * h, :2 * w], (w, h), interpolation=cv2.INTER_AREA)
        if work.shape[::-1] != size:
            work = cv2.resize(work, size, interpolation=cv2.INTER_LINEAR)
    else:
        scale = 1.0
    h, w = work.shape
    if min(h, w) == cfg.work_size >= cfg.bg_cell and (h % cfg.bg_cell or w % cfg.bg_cell):
        # a few px off the right and bottom edges: every later shrink is then by a whole factor,
        # which OpenCV averages on its fast paths (a 1280x720 frame's 853x480 took ~2.5 ms more)
        work = work[:h - h % cfg.bg_cell, :w - w % cfg.bg_cell]
    return work, scale


def to_frame(c: DigitCrop, inv: float) -> DigitCrop:
    """A crop found in the working image, with its box (and its splits') in frame pixels."""
    x, y, w, h = c.box
    box = (int(x * inv), int(y * inv), math.ceil((x + w) * inv) - int(x * inv),
           math.ceil((y + h) * inv) - int(y * inv))
    return DigitCrop(box, c.image, [(to_frame(a, inv), to_frame(b, inv)) for a, b in c.splits])


def _merge_pieces(stats: np.ndarray, h: int, h_cc: int, w_cc: int, cfg: SegmentConfig):
    """Component stats (x, y, w, h, area) -> [((x, y, w, h), [component indices])]: fragments
    merged, height and aspect checked (fill needs exact pixels: `_crop`). h is the working image's
    height; h_cc, w_cc the extent the components were found in."""
    x, y, bw, bh, area = (stats[:, i].astype(np.int64) for i in range(5))
    min_h, max_h = cfg.min_height_frac * h, cfg.max_height_frac * h
    keep = (np.maximum(bw, bh) >= max(3.0, cfg.fragment_frac * min_h)) & (bh <= max_h)
    if cfg.drop_border:
        keep &= (x > 0) & (y > 0) & (x + bw < w_cc) & (y + bh < h_cc)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(-area[idx], kind="stable")[:64]]  # biggest first; bounds the pair work
    boxes = np.stack([x[idx], y[idx], x[idx] + bw[idx], y[idx] + bh[idx]], axis=1)
    members = [[int(i)] for i in idx]
    while len(boxes) > 1:  # merge one joinable pair at a time, re-checking the grown box
        pairs = np.argwhere(_joinable(boxes, max_h, cfg))
        if not len(pairs):
            break
        a, b = sorted(pairs[0])
        boxes[a, :2], boxes[a, 2:] = boxes[[a, b], :2].min(axis=0), boxes[[a, b], 2:].max(axis=0)
        members[a] += members.pop(b)
        boxes = np.delete(boxes, b, axis=0)
    return [((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), m)
            for (x0, y0, x1, y1), m in zip(boxes, members, strict=True)
            if min_h <= y1 - y0 <= max_h
            and cfg.min_aspect <= (x1 - x0) / (y1 - y0) <= cfg.max_aspect]


def _joinable(b: np.ndarray, max_h: float, cfg: SegmentConfig) -> np.ndarray:
    """n x 4 boxes (x0, y0, x1, y1) -> n x n bool: could the two be pieces of one digit?

    Stacked (columns overlap, small vertical gap: a broken "5"), or the smaller (< 60 % of the
    taller's height) very close in any direction. Merged, they must still look like one digit.
    """
    x0, y0, x1, y1 = (b[:, k] for k in range(4))
    hh, ww = y1 - y0, x1 - x0
    tall, short = np.maximum.outer(hh, hh), np.minimum.outer(hh, hh)
    new_h = np.maximum.outer(y1, y1) - np.minimum.outer(y0, y0)
    new_w = np.maximum.outer(x1, x1) - np.minimum.outer(x0, x0)
    x_gap = np.maximum.outer(x0, x0) - np.minimum.outer(x1, x1)
    y_gap = np.maximum.outer(y0, y0) - np.minimum.outer(y1, y1)
    stacked = -x_gap >= cfg.merge_overlap * np.minimum.outer(ww, ww)
    beside = (short < 0.6 * tall) & (np.maximum(x_gap, y_gap) <= cfg.merge_side_gap_frac * tall)
    ok = np.where(stacked, y_gap <= cfg.merge_gap_frac * tall, beside) & (new_h <= max_h)
    ok &= (new_h <= cfg.merge_max_growth * tall) & (new_w <= cfg.max_aspect * new_h)
    np.fill_diagonal(ok, False)
    return ok


class _Maps(NamedTuple):
    """What `segment` computed for the whole working image, as `_crop` needs it."""

    dark: np.ndarray  # uint8 darkness, (paper - pixel) / paper, of every working pixel
    mask: np.ndarray  # uint8 0/255: ink
    labels: np.ndarray  # int32 component labels, on the pooled grid
    pool: int  # the pooled grid's cell size, in working pixels
    thr: float  # the ink threshold on `dark`


def _crop(m: _Maps, members: list[int], box: tuple[int, int, int, int],
          cfg: SegmentConfig) -> DigitCrop | None:
    """One digit's soft crop from the darkness map, other ink masked out, or None if its exact ink
    fill is out of range. box: working pixels, on the grid of `labels`. A piece wide enough to be
    two touching digits also carries the ways to cut it in two (`_splits`)."""
    x, y, bw, bh = box
    p = m.pool
    r = max(1, bh // 40)  # keep the anti-aliased rim just outside the thresholded mask
    rp = -(-r // p)
    px0, py0 = max(0, x // p - rp), max(0, y // p - rp)
    px1, py1 = min(m.labels.shape[1], (x + bw) // p + rp), min(m.labels.shape[0], (y + bh) // p + rp)
    lab = m.labels[py0:py1, px0:px1]
    sel = lab == members[0] if len(members) == 1 else np.isin(lab, members)
    if p > 1:
        sel = np.repeat(np.repeat(sel, p, axis=0), p, axis=1)
    x0, y0, x1, y1 = px0 * p, py0 * p, px1 * p, py1 * p
    core = sel & (m.mask[y0:y1, x0:x1] > 0)
    return crop_ink(core, m.dark[y0:y1, x0:x1], m.thr, (x0, y0), cfg)
