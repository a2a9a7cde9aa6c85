"""Frame -> ink: which pixels of a grey frame are pen strokes, for `edge.digits.segment`.

    >>> import numpy as np
    >>> from edge.digits import SegmentConfig
    >>> from edge.ink import ink_mask
    >>> page = np.full((120, 160), 200, np.uint8); page[40:80, 78:82] = 60        # a "1"
    >>> dark, mask, thr = ink_mask(page, SegmentConfig())
    >>> bool(mask[60, 80]), bool(mask[10, 10])
    (True, False)

The ink's polarity is decided (dark ink is the rule), the lighting divided out ((paper - pixel) /
paper against a coarse closing of the frame), the darkness thresholded above the sensor noise, and
ruled or grid lines removed (`remove_lines`). numpy + OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.fast import by_label, median, median_blur, median_of_counts, percentile_u8, shrink

if TYPE_CHECKING:
    from edge.digits import SegmentConfig


MIN_LINE_PIXELS = 20  # fewer removed pixels than this: too few to know the lines' darkness


def ink_mask(work: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """grey working image -> (darkness 0..255, (paper - pixel) / paper; ink mask 0/255; the
    threshold used on the darkness). Lighting divides out; ink polarity is decided here."""
    h, w = work.shape
    tiny = coarse(work, cfg)
    if not dark_ink(work, tiny, cfg):
        work, tiny = cv2.bitwise_not(work), cv2.bitwise_not(tiny)
    # Paper: a closing removes the dark strokes from the coarse copy and keeps the lighting.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (cfg.bg_kernel, cfg.bg_kernel))
    paper = cv2.GaussianBlur(cv2.morphologyEx(tiny, cv2.MORPH_CLOSE, kernel), (3, 3), 0)
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    diff = cv2.subtract(paper, work)
    dark = cv2.divide(diff, cv2.max(paper, 40), scale=255)  # 0..255; floor 40: black frames
    otsu, _ = cv2.threshold(np.ascontiguousarray(dark[::2, ::2]), 0, 255,
                            cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    thr = float(np.clip(otsu, 255 * cfg.min_contrast, 255 * cfg.max_threshold))
    _, mask = cv2.threshold(dark, thr, 255, cv2.THRESH_BINARY)
    # ...and clearly darker than the noise, or dim corners of a noisy frame become "ink". Pixels
    # brighter than the paper (ink never is) exceed it by |noise|, whose median is 0.674 sigma.
    up = cv2.subtract(np.ascontiguousarray(work[::4, ::4]), np.ascontiguousarray(paper[::4, ::4]))
    sigma = percentile_u8(up, up > 0, 50) / 0.674 if cv2.countNonZero(up) >= 64 else 0.0
    _, strong = cv2.threshold(diff, cfg.noise_sigmas * sigma, 255, cv2.THRESH_BINARY)
    mask = cv2.bitwise_and(mask, strong)
    if cfg.close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((cfg.close_px,) * 2, np.uint8))
    return dark, mask, thr


def coarse(work: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """The frame averaged over bg_cell x bg_cell cells: where the paper's lighting is estimated."""
    h, w = work.shape
    return cv2.resize(work, (max(3, round(w / cfg.bg_cell)), max(3, round(h / cfg.bg_cell))),
                      interpolation=cv2.INTER_AREA)  # exact: halvings' rounding lifts the paper a level


def remove_lines(mask: np.ndarray, cfg: SegmentConfig, faint: np.ndarray | None = None,
                 dark: np.ndarray | None = None) -> np.ndarray:
    """Ink mask -> the same without ruled or grid lines, strokes that cross a line re-joined.

    A line is a run of ink along a row (or column) band `line_band` px thick, at least
    `line_len_frac` of the frame long: a digit is never that long. Its pixels are dropped unless
    the ink there is thicker across the line than a line is (a stroke lying along it), then
    restored where ink continues right across the band (a stroke crossing the line). Lines are
    looked for in `faint` (a mask at a lower threshold) when given, else in `mask`. With the
    darkness map `dark`, dropped pixels clearly darker than the lines' own median darkness
    (`line_darker` x) that join ink which stayed are a pen's stroke on the line, and are given back.
    """
    out = _remove_lines(mask, cfg, mask if faint is None else faint)
    if dark is None:
        return out
    gone = cv2.bitwise_and(mask, cv2.bitwise_not(out))
    if cv2.countNonZero(gone) < MIN_LINE_PIXELS:
        return out
    counts = cv2.calcHist([dark], [0], gone, [256], [0, 256]).ravel().astype(np.int64)
    line = float(median_of_counts(counts))  # the removed pixels' median darkness
    back = cv2.bitwise_and(gone, cv2.threshold(dark, cfg.line_darker * line, 255, cv2.THRESH_BINARY)[1])
    if not cv2.countNonZero(back):
        return out
    # ...if they join ink that stayed: a stroke along a rule belongs to a digit, while a darker
    # stretch of a rule on its own (a shadow's edge across it) would read as a "1" on a blank page
    touching = cv2.findNonZero(cv2.bitwise_and(back, cv2.dilate(out, np.ones((3, 3), np.uint8))))
    if touching is None:
        return out
    n, lab = cv2.connectedComponents(back, connectivity=8, ltype=cv2.CV_16U)
    keep = np.zeros(n, np.uint8)
    xy = touching.reshape(-1, 2)
    keep[lab[xy[:, 1], xy[:, 0]]] = 255
    keep[0] = 0
    return cv2.bitwise_or(out, by_label(lab, keep))


def _remove_lines(mask: np.ndarray, cfg: SegmentConfig, faint: np.ndarray) -> np.ndarray:
    out = mask
    h, w = mask.shape
    # Lines are looked for at half size (4x fewer pixels for the component pass), then used at full.
    half = cv2.resize(faint, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    seg, band = max(3, min(h, w) // 24), max(1, cfg.line_band // 2)
    for horizontal in (True, False):
        # kernels as (rows, cols): smear across the line, open along it (both at half size);
        # bridge across it and measure thickness across it (full size)
        smear, along, bridge = (band, 1), (1, seg), (2 * cfg.line_band + 3, 1)
        across = (cfg.line_band + 2, 1)
        if not horizontal:
            smear, along, bridge, across = smear[::-1], along[::-1], bridge[::-1], across[::-1]
        span = half.shape[1] if horizontal else half.shape[0]
        covered = half.any(axis=0 if horizontal else 1)  # (cv2.reduce's max: 5-20x slower)
        covered[1:] |= covered[:-1].copy()  # the opening below may shift ink a column (even kernel)
        covered[:-1] |= covered[1:].copy()
        need = cfg.line_len_frac * span  # (a stretch is never longer than its count: counted first)
        if np.count_nonzero(covered) < need or _longest_stretch(covered) < need:
            continue  # the runs below lie within these columns (rows): no line there either
        runs = cv2.morphologyEx(cv2.dilate(half, np.ones(smear, np.uint8)), cv2.MORPH_OPEN,
                                np.ones(along, np.uint8))
        if _longest_stretch(runs.any(axis=0 if horizontal else 1)) < cfg.line_len_frac * span:
            continue  # no unbroken stretch of columns (rows) with runs is long enough for a line
        n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
            runs, 8, cv2.CV_16U, cv2.CCL_GRANA)
        extent = stats[1:, cv2.CC_STAT_WIDTH if horizontal else cv2.CC_STAT_HEIGHT]
        lut = np.zeros(n, np.uint8)
        lut[1:][extent >= cfg.line_len_frac * span] = 255
        if not lut.any():
            continue
        lines = cv2.resize(by_label(labels, lut), (w, h), interpolation=cv2.INTER_NEAREST)
        # ink thicker across the line than a line is (a marker stroke lying along it) stays
        thick = cv2.morphologyEx(out, cv2.MORPH_OPEN, np.ones(across, np.uint8))
        lines = cv2.bitwise_and(lines, cv2.bitwise_not(thick))
        kept = cv2.bitwise_and(out, cv2.bitwise_not(lines))
        bridged = cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones(bridge, np.uint8))
        out = cv2.bitwise_or(kept, cv2.bitwise_and(bridged, cv2.bitwise_and(lines, out)))
    return out


def _longest_stretch(covered: np.ndarray) -> int:
    """The longest unbroken stretch of True: a component's columns are one such stretch, so a line
    needs one at least as long (and the component pass is skipped on most frames without lines)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.view(np.int8), [0]))))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def dark_ink(work: np.ndarray, tiny: np.ndarray, cfg: SegmentConfig) -> bool:
    """Is the ink darker than the paper? Dark ink is the rule; light ink (chalk, a screen) is
    decided only when two tests agree: strong outliers against the local median of the coarse
    copy, and thin light structures (top-hat) against thin dark ones (black-hat) on a quarter-size
    copy. The edge of a hand's shadow fools the first; lined paper's light gaps the second."""
    if cfg.polarity not in ("auto", "dark", "light"):
        raise ValueError(f"SegmentConfig.polarity: 'auto', 'dark' or 'light', not {cfg.polarity!r}")
    if cfg.polarity != "auto":
        return cfg.polarity == "dark"
    h, w = work.shape
    mid = shrink(work, (max(1, w // 4), max(1, h // 4)))
    k = max(8.0, cfg.min_contrast * median(tiny.ravel()))
    med = cv2.resize(median_blur(tiny, 5 if min(tiny.shape) >= 5 else 3),
                     (mid.shape[1], mid.shape[0]), interpolation=cv2.INTER_LINEAR)
    diff = mid.astype(np.int16) - med
    if np.count_nonzero(diff < -k) >= np.count_nonzero(diff > k):
        return True
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    dark = cv2.morphologyEx(mid, cv2.MORPH_BLACKHAT, kernel)
    light = cv2.morphologyEx(mid, cv2.MORPH_TOPHAT, kernel)
    return np.count_nonzero(dark > k) >= np.count_nonzero(light > k)
