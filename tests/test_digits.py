"""edge.digits: colour order, MNIST-style crops, and segmenting synthetic camera frames.

MNIST comes from the `mnist` fixture (conftest.py: $MNIST_EDGE_DATA, else
../shared/data/mnist.npz; the run stops in one line when neither exists). No model here: accuracy
with the int8 model is tested elsewhere.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.synthetic import blank_frame, make_frame, noise_frame
from edge.crops import DigitCrop, mnist_style
from edge.digits import SegmentConfig, segment, to_grey

RED_LUMA, GREEN_LUMA, BLUE_LUMA = 76, 150, 29  # ITU-R BT.601: 0.299, 0.587, 0.114 of 255


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


def com_and_box(img: np.ndarray):
    """Reference in plain numpy: centre of mass (row, col), non-zero bounding box (h, w)."""
    f = img.astype(np.float64)
    rows, cols = np.indices(f.shape)
    com = ((f * rows).sum() / f.sum(), (f * cols).sum() / f.sum())
    r, c = np.nonzero(img)
    return com, (r.max() - r.min() + 1, c.max() - c.min() + 1)


# ---------------------------------------------------------------- to_grey


def solid(shape, channel_values) -> np.ndarray:
    a = np.zeros(shape, np.uint8)
    a[...] = channel_values
    return a


def test_to_grey_colour_order_3_channels():
    red_in_bgr = solid((6, 8, 3), (0, 0, 255))  # OpenCV order: B, G, R
    assert np.all(np.abs(to_grey(red_in_bgr, "bgr").astype(int) - RED_LUMA) <= 1)
    assert np.all(np.abs(to_grey(red_in_bgr).astype(int) - RED_LUMA) <= 1)  # bgr is the default
    # The same bytes read as RGB are pure blue.
    assert np.all(np.abs(to_grey(red_in_bgr, "rgb").astype(int) - BLUE_LUMA) <= 1)
    red_in_rgb = solid((6, 8, 3), (255, 0, 0))
    assert np.all(np.abs(to_grey(red_in_rgb, "rgb").astype(int) - RED_LUMA) <= 1)
    assert np.all(np.abs(to_grey(red_in_rgb, "bgr").astype(int) - BLUE_LUMA) <= 1)
    green = solid((6, 8, 3), (0, 255, 0))
    assert np.all(np.abs(to_grey(green, "rgb").astype(int) - GREEN_LUMA) <= 1)
    # picamera2 "RGB888" is B,G,R in memory, "BGR888" is R,G,B; names are case-insensitive.
    assert to_grey(red_in_bgr, "RGB888")[0, 0] == to_grey(red_in_bgr, "bgr")[0, 0]
    assert to_grey(red_in_rgb, "BGR888")[0, 0] == to_grey(red_in_rgb, "rgb")[0, 0]
    # Views with odd strides (a channel flip, every other column) are fine.
    assert np.all(np.abs(to_grey(red_in_bgr[..., ::-1], "rgb").astype(int) - RED_LUMA) <= 1)
    assert to_grey(red_in_bgr[:, ::2], "bgr").shape == (6, 4)


def test_to_grey_4_channels_ignore_the_4th():
    rng = np.random.default_rng(0)
    bgrx = solid((5, 7, 4), (0, 0, 255, 0))
    bgrx[..., 3] = rng.integers(0, 256, (5, 7))  # alpha / padding byte: must not matter
    for order in ("bgra", "bgrx", "xrgb8888", "XRGB8888", "bgr"):
        assert np.all(np.abs(to_grey(bgrx, order).astype(int) - RED_LUMA) <= 1), order
    for order in ("rgba", "rgbx", "xbgr8888", "rgb"):
        assert np.all(np.abs(to_grey(bgrx, order).astype(int) - BLUE_LUMA) <= 1), order


def test_to_grey_passes_grey_and_y_plane_through():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    assert to_grey(grey) is grey
    assert np.array_equal(to_grey(grey[:, :, None], "rgb"), grey)
    yuv420 = rng.integers(0, 256, (48 * 3 // 2, 64), dtype=np.uint8)  # picamera2 "YUV420"
    y = to_grey(yuv420[:48])
    assert y.shape == (48, 64) and y.dtype == np.uint8 and np.array_equal(y, yuv420[:48])


@pytest.mark.parametrize("bad", [
    np.zeros((4, 4, 3), np.float32),
    np.zeros((4, 4), np.uint16),
    np.zeros((4, 4, 2), np.uint8),
    np.zeros((4, 4, 5), np.uint8),
    np.zeros((2, 4, 4, 3), np.uint8),
    np.zeros(16, np.uint8),
    np.zeros((4, 4), bool),
])
def test_to_grey_rejects_other_shapes_and_dtypes(bad):
    with pytest.raises(ValueError, match="to_grey"):
        to_grey(bad)


def test_to_grey_rejects_unknown_order_and_segment_wants_grey():
    with pytest.raises(ValueError, match="color_order"):
        to_grey(np.zeros((4, 4, 3), np.uint8), "yuv")
    with pytest.raises(ValueError, match="to_grey"):
        segment(np.zeros((480, 640, 3), np.uint8))


# ---------------------------------------------------------------- mnist_style


def test_mnist_style_reproduces_mnist(mnist):
    """MNIST digits already are 20-px boxes centred by mass: mnist_style must leave them alone."""
    x = mnist.x_test[:2000]
    same = np.mean([np.array_equal(mnist_style(d), d) for d in x])
    assert same >= 0.99, same


def random_patch(rng) -> np.ndarray:
    """A white-on-black stroke drawing of random size and aspect, from 6 to 300 px."""
    h, w = (int(v) for v in rng.integers(6, 300, 2))
    img = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p0, p1, 255, max(1, min(h, w) // 8))
    cv2.ellipse(img, (w // 2, h // 2), (max(1, w // 3), max(1, h // 3)), 0, 0, 360, 200,
                max(1, min(h, w) // 10))
    return img


def test_mnist_style_size_and_centre_of_mass():
    rng = np.random.default_rng(2)
    for _ in range(200):
        patch = random_patch(rng)
        out = mnist_style(patch)
        assert out.shape == (28, 28) and out.dtype == np.uint8
        (cy, cx), (bh, bw) = com_and_box(out)
        _, (ph, pw) = com_and_box(patch)
        assert abs(max(bh, bw) - 20) <= 1, (bh, bw)
        expected_short = min(ph, pw) * 20 / max(ph, pw)  # aspect ratio kept
        assert abs(min(bh, bw) - expected_short) <= 1.5, (bh, bw, ph, pw)
        if 4 <= min(bh, bw):  # thin/flat digits may be clamped to stay inside the canvas
            assert abs(cy - 14) <= 0.5 + 1e-6 and abs(cx - 14) <= 0.5 + 1e-6, (cy, cx)


def test_mnist_style_bool_empty_and_bad_input():
    square = np.zeros((40, 30), bool)
    square[5:35, 10:20] = True  # 30 tall, 10 wide -> 20 x 7
    out = mnist_style(square)
    (cy, cx), (bh, bw) = com_and_box(out)
    assert (bh, bw) == (20, 7) and out.max() == 255
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert not mnist_style(np.zeros((10, 10), np.uint8)).any()
    with pytest.raises(ValueError):
        mnist_style(np.zeros((10, 10, 3), np.uint8))


# ---------------------------------------------------------------- segment


def read_frames(x_test, seed: int, n_frames: int, size=(480, 640), invert=False, **kw):
    """Synthetic frames -> list of (digit indices, true boxes, crops)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_frames):
        idx = rng.integers(0, len(x_test), int(rng.integers(1, 5)))
        frame, boxes = make_frame([x_test[i] for i in idx], rng, size=size, **kw)
        grey = to_grey(frame, "bgr")
        out.append((idx, boxes, segment(255 - grey if invert else grey)))
    return out


def digits_in_place(results) -> tuple[int, int]:
    """(digits found with the right count and in the right left-to-right place, digits drawn)."""
    ok = sum(sum(iou(c.box, b) >= 0.5 for c, b in zip(crops, boxes, strict=True))
             for _, boxes, crops in results if len(crops) == len(boxes))
    return ok, sum(len(boxes) for _, boxes, _ in results)


@pytest.fixture(scope="module")
def frames(mnist):
    return read_frames(mnist.x_test, seed=2024, n_frames=100)


def test_segment_finds_digits_left_to_right(frames):
    for _, _, crops in frames:
        for c in crops:
            assert isinstance(c, DigitCrop) and c.image.shape == (28, 28)
            assert c.image.dtype == np.uint8 and c.image.any()
        centres = [c.box[0] + c.box[2] / 2 for c in crops]
        assert centres == sorted(centres)
    ok, total = digits_in_place(frames)
    assert ok / total >= 0.97, f"{ok}/{total} digits found in place"


@pytest.mark.parametrize("n_frames, kw", [
    (20, {"invert": True}),  # light ink on dark paper: polarity is detected
    (8, {"size": (960, 1280)}),  # downscaled to work on; boxes come back in frame pixels
    (20, {"size": (240, 320)}),
])
def test_segment_light_ink_and_other_sizes(mnist, n_frames, kw):
    ok, total = digits_in_place(read_frames(mnist.x_test, seed=7, n_frames=n_frames, **kw))
    assert ok / total >= 0.95, f"{ok}/{total} digits found in place"


def test_segment_blank_and_noise_frames_give_nothing():
    rng = np.random.default_rng(3)
    for _ in range(12):
        assert segment(to_grey(blank_frame(rng))) == []
        assert segment(to_grey(noise_frame(rng))) == []
    assert segment(rng.integers(0, 256, (480, 640), dtype=np.uint8)) == []  # pure noise
    for level in (0, 128, 255):
        assert segment(np.full((480, 640), level, np.uint8)) == []
    assert segment(np.zeros((10, 10), np.uint8)) == []  # too small to hold a digit


def test_segment_config_is_honoured(mnist):
    rng = np.random.default_rng(4)
    frame, boxes = make_frame([mnist.x_test[0]], rng, height_frac=(0.3, 0.3))
    grey = to_grey(frame)
    assert len(segment(grey, SegmentConfig(polarity="dark"))) == 1
    assert segment(grey, SegmentConfig(min_height_frac=0.5)) == []
    with pytest.raises(ValueError, match="polarity"):
        segment(grey, SegmentConfig(polarity="blue"))


def test_the_widest_mnist_digits_are_found_lying_flat(mnist):
    """The four widest MNIST test digits (2:1 at their faint edges), drawn level: each is found
    whole, though one's crisp ink box is 2.3 times as wide as it is tall."""
    for i in (3520, 8408, 6785, 7451):
        for seed in range(3):
            frame, boxes = make_frame([mnist.x_test[i]], np.random.default_rng(seed), height_frac=(0.2, 0.2),
                                      max_angle=0)
            crops = segment(to_grey(frame))
            assert len(crops) == 1, (i, seed, boxes)
            assert iou(crops[0].box, boxes[0]) >= 0.8, (i, seed, crops[0].box, boxes)


def test_four_big_digits_that_overflow_even_shrunk_still_fit(mnist):
    """Rotation and rounding can leave four shrunk digits a few pixels too wide for the frame: the
    clean-frame generator shrinks again instead of failing (these digits and seed once crashed it)."""
    digits = list(mnist.x_train[[51370, 14325, 3161, 40566]])
    frame, boxes = make_frame(digits, np.random.default_rng(111), height_frac=(0.3, 0.45))
    assert len(boxes) == 4
    assert all(x >= 0 and x + w <= frame.shape[1] for x, _, w, _ in boxes)
    assert all(a[0] + a[2] <= b[0] for a, b in zip(boxes, boxes[1:], strict=False))  # side by side


def correlations(results, x_test):
    """Correlation of each crop found in place with mnist_style(its source MNIST digit)."""
    out = []
    for idx, boxes, crops in results:
        if len(crops) != len(boxes):
            continue
        for i, c, b in zip(idx, crops, boxes, strict=True):
            if iou(c.box, b) >= 0.5:
                ref = mnist_style(x_test[i]).astype(np.float64).ravel()
                out.append(np.corrcoef(ref, c.image.astype(np.float64).ravel())[0, 1])
    return np.array(out)


def test_crops_look_like_the_mnist_digits_they_came_from(frames, mnist):
    """Round trip: MNIST digit -> drawn on paper and photographed -> segment -> the original."""
    x = mnist.x_test
    rotated = correlations(frames, x)  # drawn rotated by up to +-10 degrees
    assert rotated.mean() >= 0.8 and np.median(rotated) >= 0.82, rotated.mean()
    upright = correlations(read_frames(x, seed=5, n_frames=20, max_angle=0.0), x)
    assert upright.mean() >= 0.9 and np.percentile(upright, 10) >= 0.8, upright.mean()
    # ...and clearly closer to their own source than to other digits of another class.
    rng = np.random.default_rng(6)
    others = []
    for idx, _, crops in frames[:30]:
        for i, c in zip(idx, crops, strict=False):
            j = int(rng.choice(np.flatnonzero(mnist.y_test != mnist.y_test[i])))
            others.append(np.corrcoef(x[j].astype(np.float64).ravel(),
                                      c.image.astype(np.float64).ravel())[0, 1])
    assert np.mean(others) < rotated.mean() - 0.3, np.mean(others)


def test_quiet_decides_as_pixel_noise_does_at_every_level():
    """quiet's threshold-and-count decision is pixel_noise(frame) > noisy, even at the boundary."""
    from edge.digits import pixel_noise, quiet

    rng = np.random.default_rng(0)
    decided = set()
    for sigma in (0, 2, 4, 5, 6, 8, 12):
        grey = np.clip(rng.normal(150, sigma, (60, 80)), 0, 255).astype(np.uint8)
        noise = pixel_noise(grey)
        for limit in (noise - 1e-9, noise, noise + 1e-9, 3.0, 6.5, 9.0):
            out, noisy = quiet(grey, SegmentConfig(noisy=limit))
            assert noisy == (noise > limit), (sigma, noise, limit)
            assert np.array_equal(out, cv2.medianBlur(grey, 3) if noisy else grey)
            decided.add(noisy)
    assert decided == {True, False}
    for _ in range(3000):  # small frames of odd and even sizes land on the median's ties
        h, w = (int(n) for n in rng.integers(3, 12, 2))
        grey = rng.integers(100, 100 + int(rng.integers(2, 30)), (h, w)).astype(np.uint8)
        limit = float(rng.choice([pixel_noise(grey), rng.uniform(0, 12)]))
        assert quiet(grey, SegmentConfig(noisy=limit))[1] == (pixel_noise(grey) > limit), (grey, limit)
