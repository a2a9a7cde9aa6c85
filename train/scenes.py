"""Digits as a camera on a desk delivers them: crops of generated desk scenes, labelled.

    >>> import numpy as np
    >>> from train.scenes import NOT_A_DIGIT, scene_crops
    >>> x = np.zeros((10, 28, 28), np.uint8); x[:, 6:22, 12:16] = 255            # ten "1"s
    >>> crops, labels = scene_crops(x, np.ones(10, np.int64), n_scenes=4, seed=0)
    >>> crops.shape[1:], crops.dtype, set(labels.tolist()) <= {NOT_A_DIGIT, 1}
    ((28, 28), dtype('uint8'), True)

Desk scenes (benchmarks/desk.py: lined and squared paper, marker, ballpoint and pencil, shadows,
tilt, blur, JPEG) are drawn from the digits given, which must be *training* digits, and segmented by
`edge.digits.segment`, exactly as on a device. Each crop (and each half of a piece wide enough to
be split, cut at its thinnest column) is labelled with the digit whose ink its box holds, or
NOT_A_DIGIT when it holds no one digit whole:
a piece of a ruled line, a shadow's edge, two digits merged, half a digit. Training on these teaches
the classifier the crops it will really see, and to be unsure of what is not one digit.
"""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

NOT_A_DIGIT = -1  # label of a crop that is not one whole digit
UNSURE = -2  # a crop holding most but not nearly all of a digit: not trained on
WHOLE = 0.85  # a crop is digit k when its box holds at least this share of k's ink...
STRAY = 0.25  # ...and at most this share of any other digit's
PART = 0.5  # holding less than this of every digit, it is a part, a merge or junk: NOT_A_DIGIT


def label_crop(box: tuple[int, int, int, int], owner: np.ndarray | None, n_digits: int,
               labels: list[int]) -> int:
    """What a crop is, from which digit's ink (`owner`: k + 1 per pixel) its box holds."""
    if owner is None or n_digits == 0:
        return NOT_A_DIGIT
    x, y, w, h = box
    total = np.bincount(owner.ravel(), minlength=n_digits + 1)[1:]
    inside = np.bincount(owner[y:y + h, x:x + w].ravel(), minlength=n_digits + 1)[1:]
    share = inside / np.maximum(total, 1)
    best = int(np.argmax(share))
    others = np.delete(share, best)
    if share[best] >= WHOLE and (others.size == 0 or others.max() <= STRAY):
        return int(labels[best])
    if share[best] < PART or (others.size and others.max() >= PART):
        return NOT_A_DIGIT
    return UNSURE


def _chunk(args) -> tuple[list[np.ndarray], list[int]]:
    """Scenes of one seed -> (28x28 crops, labels); run in a worker process."""
    import cv2

    from benchmarks.desk import scene_set
    from edge.digits import segment, to_grey

    images, labels, n, seed = args
    cv2.setNumThreads(1)
    crops, out = [], []
    for s in scene_set(images, labels, n, seed):
        truth = [int(c) for c in s.truth]
        for c in segment(to_grey(s.image, "bgr")):
            for piece in (c, *(h for pair in c.splits[:1] for h in pair)):
                label = label_crop(piece.box, s.owner, len(truth), truth)
                if label != UNSURE:
                    crops.append(piece.image)
                    out.append(label)
    return crops, out


def scene_crops(images: np.ndarray, labels: np.ndarray, n_scenes: int, seed: int,
                workers: int = 1, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(N x 28 x 28 uint8 crops, N int64 labels with NOT_A_DIGIT) from `n_scenes` desk scenes of
    these (training) digits. Deterministic for a given seed, whatever `workers` is."""
    jobs = [(images, labels, min(chunk, n_scenes - i), seed * 1_000_003 + i)
            for i in range(0, n_scenes, chunk)]
    t0 = time.perf_counter()
    crops: list[np.ndarray] = []
    out: list[int] = []

    def collect(parts, done):
        crops.extend(parts[0])
        out.extend(parts[1])
        log.info("desk scenes: %d/%d segmented, %d crops (%.0f s)", done, n_scenes, len(out),
                 time.perf_counter() - t0)

    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for k, parts in enumerate(pool.imap(_chunk, jobs)):
                collect(parts, min(n_scenes, (k + 1) * chunk))
    else:
        for k, job in enumerate(jobs):
            collect(_chunk(job), min(n_scenes, (k + 1) * chunk))
    if not crops:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.stack(crops).astype(np.uint8), np.array(out, np.int64)
