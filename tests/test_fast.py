"""edge.fast gives numpy's own order statistics, on seeded data of every shape the path feeds it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.fast import by_label, deviations, median, median_blur, median_of_counts, percentile_u8


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_median_is_numpys(dtype):
    rng = np.random.default_rng(0)
    for n in list(range(1, 12)) + [255, 256, 4001]:
        x = (rng.random(n) * 255).astype(dtype)
        assert median(x) == np.median(x), (dtype, n)


def test_median_and_percentile_of_nothing_are_nan():
    assert np.isnan(median(np.array([], np.float32)))
    assert np.isnan(percentile_u8(np.zeros((2, 2), np.uint8), np.zeros((2, 2), bool), 90))


def test_percentile_u8_interpolates_as_numpy_does():
    values = np.array([10, 1, 1], np.uint8)  # 90 %: numpy's b - (b - a)(1 - t), not a + (b - a)t
    assert percentile_u8(values, values > 0, 90) == np.percentile(values, 90)


@pytest.mark.parametrize("q", [0.0, 10.0, 50.0, 90.0, 100.0, 37.3])
def test_percentile_u8_is_numpys(q):
    rng = np.random.default_rng(1)
    for trial in range(200):
        h, w = rng.integers(1, 80, 2)
        values = rng.integers(0, 256, (h + 5, w + 5)).astype(np.uint8)
        if trial % 3 == 0:
            values = (values // 50 * 50).astype(np.uint8)  # many ties
        values = values[2:2 + h, 3:3 + w]  # a window: not contiguous, as a digit's is
        where = rng.random((h, w)) < rng.random()
        if not where.any():
            continue
        assert percentile_u8(values, where, q) == np.percentile(values[where], q)


def test_shrink_is_inter_area_within_a_level():
    import cv2

    from edge.fast import shrink

    frame = np.random.default_rng(2).integers(0, 256, (480, 640)).astype(np.uint8)
    for size in [(320, 240), (160, 120), (40, 30), (100, 75), (41, 30)]:
        want = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        got = shrink(frame, size)
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).max() <= (1 if size in [(160, 120), (40, 30)] else 0), size


def test_longest_stretch_bounds_a_lines_extent():
    from edge.ink import _longest_stretch

    for bits, want in [([], 0), ([0, 0], 0), ([1], 1), ([1, 1, 0, 1], 2), ([1, 0, 1, 1, 1, 1, 0], 4)]:
        assert _longest_stretch(np.array(bits, bool)) == want


def test_median_of_counts_is_the_lower_median():
    rng = np.random.default_rng(3)
    for n in list(range(1, 9)) + [100, 101]:
        x = rng.integers(0, 256, n)
        assert median_of_counts(np.bincount(x, minlength=256)) == np.sort(x)[(n - 1) // 2], n


def test_deviations_count_distances_from_the_centre():
    """The folded histogram is the histogram of |v - centre|, so the MAD it gives is the same."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 300, 5000):
        x = np.clip(rng.normal(rng.integers(0, 256), 30, n), 0, 255).astype(np.uint8)
        counts = np.bincount(x, minlength=256)
        for centre in (0, 255, int(rng.integers(0, 256)), median_of_counts(counts)):
            want = np.bincount(np.abs(x.astype(np.int64) - centre), minlength=256)
            got = deviations(counts, centre)
            assert got.sum() == n
            np.testing.assert_array_equal(np.pad(got, (0, 256 - len(got))), want[:256])
            dist = np.abs(x.astype(np.int64) - centre)
            assert median_of_counts(got) == int(np.quantile(dist, 0.5, method="lower"))


def test_by_label_is_numpys_gather_for_few_and_many_labels():
    rng = np.random.default_rng(5)
    for n in (1, 2, 255, 256, 257, 5000):
        labels = rng.integers(0, n, (40, 60)).astype(np.uint16)
        table = rng.integers(0, 256, n).astype(np.uint8)
        np.testing.assert_array_equal(by_label(labels, table), table[labels])


def test_median_blur_is_opencvs_on_narrow_and_wide_images():
    """Widening a narrow image with its own edge before the median filter changes no pixel."""
    rng = np.random.default_rng(4)
    for h, w in [(1, 1), (3, 2), (5, 5), (30, 40), (37, 67), (30, 79), (30, 80), (12, 200)]:
        for k in (3, 5):
            img = rng.integers(0, 256, (h, w)).astype(np.uint8)
            np.testing.assert_array_equal(median_blur(img, k), cv2.medianBlur(img, k))
