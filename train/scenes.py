"""Digits as a camera on a desk delivers them: crops of generated desk scenes, labelled.

    >>> import numpy as np
    >>> from train.scenes import scene_crops
    >>> x = np.zeros((10, 28, 28), np.uint8); x[:, 6:22, 12:16] = 255            # ten "1"s
    >>> crops, labels = scene_crops(x, np.ones(10, np.int64), n_scenes=4, seed=0)
    >>> crops.shape[1:], crops.dtype, set(labels.tolist()) <= {1}
    ((28, 28), dtype('uint8'), True)

Desk scenes (benchmarks/desk.py: lined and squared paper, marker, ballpoint and pencil, shadows,
tilt, blur, JPEG) are drawn from the digits given, which must be *training* digits, and cut into
crops by the device's own path (`edge.reader.locate_digits` with a digit locator, as camera and
predict read by default; `edge.digits.segment` without one). Each crop, and each half of a piece
wide enough to be split, is kept when its box holds one digit whole, labelled with that digit: the
classifier then learns the crops it will really see. What holds no one digit whole (a piece of a
ruled line, two digits merged, half a digit) is not trained on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.contract import DEFAULT_MODEL
from edge.errors import UserError
from edge.models import NO_LOCATOR

log = logging.getLogger(__name__)

WHOLE = 0.85  # a crop is digit k when its box holds at least this share of k's ink...
STRAY = 0.25  # ...and at most this share of any other digit's


def label_crop(box: tuple[int, int, int, int], owner: np.ndarray | None, n_digits: int,
               labels: list[int]) -> int | None:
    """The digit a crop holds whole, from which digit's ink (`owner`: k + 1 per pixel) its box
    holds; None when it holds no one digit whole."""
    if owner is None or n_digits == 0:
        return None
    x, y, w, h = box
    total = np.bincount(owner.ravel(), minlength=n_digits + 1)[1:]
    inside = np.bincount(owner[y:y + h, x:x + w].ravel(), minlength=n_digits + 1)[1:]
    share = inside / np.maximum(total, 1)
    best = int(np.argmax(share))
    others = np.delete(share, best)
    if share[best] >= WHOLE and (others.size == 0 or others.max() <= STRAY):
        return int(labels[best])
    return None


def desk_locator(flag: str | None) -> str | None:
    """The locator file desk scenes are read with, from train's --desk-locator: that file; None for
    "none" (segmentation); unset: the shipped one (./models, then the repo's models/; none there is
    a UserError, not a quiet switch to segmentation)."""
    if flag == NO_LOCATOR:
        return None
    if flag:
        return flag
    from edge.models import locator_name, model_dirs

    name = locator_name(Path(DEFAULT_MODEL))
    for folder in model_dirs():
        if (folder / name).is_file():
            return str(folder / name)
    raise UserError(f"--desk-scenes: no shipped {name} in {' or '.join(map(str, model_dirs()))}; "
                    f"pass --desk-locator FILE, or --desk-locator {NO_LOCATOR} for segmentation")


def _chunk(args) -> tuple[list[np.ndarray], list[int]]:
    """Scenes of one seed -> (28x28 crops, labels); run in a worker process."""
    import cv2

    from benchmarks.desk import scene_set
    from edge.locator import Locator
    from edge.reader import find_digits, locate_digits

    images, labels, n, seed, locator = args
    cv2.setNumThreads(1)
    loc = Locator(locator) if locator else None
    crops, out = [], []
    for s in scene_set(images, labels, n, seed):
        truth = [int(c) for c in s.truth]
        found = locate_digits(s.image, loc) if loc else find_digits(s.image)
        for c in found:
            for piece in (c, *(h for pair in c.splits[:1] for h in pair)):
                label = label_crop(piece.box, s.owner, len(truth), truth)
                if label is not None:
                    crops.append(piece.image)
                    out.append(label)
    return crops, out


def scene_crops(images: np.ndarray, labels: np.ndarray, n_scenes: int, seed: int,
                workers: int = 1, chunk: int = 100,
                locator: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N x 28 x 28 uint8 crops, N int64 labels) from `n_scenes` desk scenes of these (training)
    digits, found by this locator file (None: by segmentation). Deterministic for a given seed,
    whatever `workers` is."""
    jobs = [(images, labels, min(chunk, n_scenes - i), seed * 1_000_003 + i, locator)
            for i in range(0, n_scenes, chunk)]
    if jobs:
        log.info("making %d desk scenes of training digits and reading them (%s)", n_scenes,
                 locator or "segmentation")
    t0 = time.perf_counter()
    crops: list[np.ndarray] = []
    out: list[int] = []

    def collect(parts, done):
        crops.extend(parts[0])
        out.extend(parts[1])
        log.info("desk scenes: %d/%d read, %d crops (%.0f s)", done, n_scenes, len(out),
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
