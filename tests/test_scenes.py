"""Training crops from desk scenes: cut exactly as the device cuts a frame, labelled only when
they hold one digit whole."""

import numpy as np

from benchmarks.desk import scene_set
from edge.locator import Locator
from edge.reader import find_digits, locate_digits
from tests.conftest import REPO
from train.scenes import _chunk, label_crop

LOCATOR = REPO / "models" / "locator_int8.tflite"


def test_a_crop_is_labelled_only_when_it_holds_one_digit_whole():
    owner = np.zeros((40, 80), np.uint8)
    owner[10:30, 5:20] = 1   # digit 0 of the scene: a "3"
    owner[10:30, 40:55] = 2  # digit 1: a "7"
    assert label_crop((5, 10, 15, 20), owner, 2, [3, 7]) == 3
    assert label_crop((38, 8, 20, 25), owner, 2, [3, 7]) == 7
    assert label_crop((5, 10, 50, 20), owner, 2, [3, 7]) is None   # both: a merge
    assert label_crop((5, 10, 8, 20), owner, 2, [3, 7]) is None    # half of the "3"
    assert label_crop((0, 0, 80, 40), None, 0, []) is None         # a blank page


def _pieces(crops):
    return [p.image.tobytes() for c in crops for p in (c, *(h for pair in c.splits[:1] for h in pair))]


def test_training_crops_are_the_crops_the_device_reads(mnist):
    x, y = mnist.x_train[:400], mnist.y_train[:400]
    scenes = scene_set(x, y, 5, 11)
    truth = {int(d) for s in scenes for d in s.truth}
    loc = Locator(LOCATOR)
    for locator, read in ((str(LOCATOR), lambda s: locate_digits(s.image, loc)),
                          (None, lambda s: find_digits(s.image))):
        crops, labels = _chunk((x, y, 5, 11, locator))
        device = set(_pieces([c for s in scenes for c in read(s)]))
        assert len(crops) >= 5 and all(c.tobytes() in device for c in crops), locator
        assert set(labels) <= set(truth), locator  # each label a digit those scenes hold (a piece
        #   and its half may hold the same digit whole: both are what the classifier is shown)
