"""numpy's order statistics without their overhead (same figures), and a faster INTER_AREA shrink.

    >>> import numpy as np
    >>> from edge.fast import median, percentile_u8
    >>> x = np.array([[3, 1], [200, 7]], np.uint8)
    >>> median(x.ravel()), float(np.median(x))
    (5.0, 5.0)
    >>> percentile_u8(x, x > 0, 90), float(np.percentile(x[x > 0], 90))
    (142.10000000000002, 142.10000000000002)

np.median and np.percentile spend most of their time on checks and copies when called on the few
thousand pixels of one digit, many times a frame; these give the same numbers faster.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MAD_SIGMA = 1.4826  # a median absolute deviation x this = the std-dev of normal noise
MEDIAN_MIN_WIDTH = 80  # narrower images are widened before OpenCV's median filter (`median_blur`)


def median(x: np.ndarray) -> float:
    """np.median of a 1-D array (nan if empty), by partition alone."""
    k = x.size // 2
    if x.size == 0:
        return math.nan
    if x.size % 2:
        return float(np.partition(x, k)[k])
    return float(np.mean(np.partition(x, [k - 1, k])[k - 1:k + 1]))  # np.median's own mean


def median_of_counts(counts: np.ndarray) -> int:
    """The (lower) median of the values a histogram counts: counts[v] = how many values are v."""
    return int(np.searchsorted(np.cumsum(counts), (counts.sum() + 1) // 2))


def deviations(counts: np.ndarray, centre: int) -> np.ndarray:
    """A histogram of values -> the histogram of their distances from `centre` (|v - centre|), so a
    median absolute deviation needs no second pass over the pixels."""
    n = len(counts)
    out = np.zeros(max(centre + 1, n - centre), counts.dtype)
    out[:n - centre] += counts[centre:]  # v >= centre
    out[1:centre + 1] += counts[centre - 1::-1] if centre else 0  # v < centre, nearest first
    return out


def median_blur(img: np.ndarray, k: int) -> np.ndarray:
    """cv2.medianBlur(img, k), fast on narrow images too. OpenCV's vector path wants about 68
    columns; a narrower image took eight times longer (the 40x30 paper grid of a 640x480 frame: 122
    against 15 us), so it is widened with its own edge first (OpenCV's own border), which leaves
    every output pixel as it was."""
    w = img.shape[1]
    if w >= MEDIAN_MIN_WIDTH:
        return cv2.medianBlur(img, k)
    side = max(k // 2, -(-(MEDIAN_MIN_WIDTH - w) // 2))
    wide = cv2.copyMakeBorder(img, 0, 0, side, side, cv2.BORDER_REPLICATE)
    return cv2.medianBlur(wide, k)[:, side:side + w]


def by_label(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[labels]: a uint8 value per connected-component label (`table` has one per label),
    through cv2.LUT when every label fits in a byte (many times faster than numpy's gather)."""
    if len(table) > 256:
        return table[labels]
    lut = np.zeros(256, np.uint8)  # (np.pad took twice as long as the lookup itself)
    lut[:len(table)] = table
    return cv2.LUT(labels.astype(np.uint8), lut)


def percentile_u8(values: np.ndarray, where: np.ndarray, q: float) -> float:
    """np.percentile(values[where], q), linear interpolation, for uint8 `values` and a bool `where`
    of the same shape, from their histogram instead of a sort (nan if `where` selects nothing)."""
    below = np.cumsum(np.bincount(values[where], minlength=256))  # below[v]: how many values are <= v
    if below[-1] == 0:
        return math.nan
    k = q / 100.0 * (int(below[-1]) - 1)
    lo, hi = (float(v) for v in np.searchsorted(below, [math.floor(k), math.ceil(k)], side="right"))
    t = k - math.floor(k)
    return hi - (hi - lo) * (1 - t) if t >= 0.5 else lo + (hi - lo) * t  # numpy's own lerp


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize(img, size (w, h), INTER_AREA), by halvings when size is img's over a power of two.

    OpenCV averages 2x2 blocks on a fast path, but takes a general one for 4x and 16x that is 3-6x
    slower on a 640x480 frame; 2x2 averages of 2x2 averages are the same mean, rounded at each step
    (so a pixel may differ by one level).
    """
    h, w = img.shape[:2]
    k = max(0, (w // max(1, size[0])).bit_length() - 1)
    if k == 0 or (w, h) != (size[0] << k, size[1] << k):
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    for _ in range(k):
        h, w = h // 2, w // 2
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return img
