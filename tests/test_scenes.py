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
    loc = Locator(LOCATOR)
    kept = 0
    for seed in range(11, 16):  # one scene a call, so each crop's label is checked against its scene
        (scene,) = scene_set(x, y, 1, seed)
        for locator, found in ((str(LOCATOR), locate_digits(scene.image, loc)),
                               (None, find_digits(scene.image))):
            crops, labels = _chunk((x, y, 1, seed, locator))
            device = set(_pieces(found))
            assert all(c.tobytes() in device for c in crops), (seed, locator)
            assert set(labels) <= {int(d) for d in scene.truth}, (seed, locator, labels, scene.truth)
            kept += len(crops)
    assert kept >= 5


def test_without_a_shipped_locator_desk_training_says_so_before_it_starts(tmp_path, monkeypatch):
    import edge.models
    from edge.errors import UserError
    from train.train import TrainConfig, _check

    monkeypatch.setattr(edge.models, "model_dirs", lambda: [tmp_path])
    try:
        _check(TrainConfig(desk_scenes=10))
    except UserError as e:
        assert "--desk-scenes: no shipped locator_int8.tflite" in str(e) and "--desk-locator none" in str(e)
    else:
        raise AssertionError("no error")
    _check(TrainConfig(desk_scenes=10, desk_locator="none"))  # segmentation needs no locator
    _check(TrainConfig())  # nor does training on MNIST alone
