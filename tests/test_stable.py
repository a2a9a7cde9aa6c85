"""edge.stable: per-digit votes over a window of frames, the plausibility checks for counters, and the
camera holding a stable reading through real misread frames."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmarks.synthetic import make_frame
from edge.camera import read_frame
from edge.classifier import Classifier
from edge.errors import UserError
from edge.sources import Frame
from edge.stable import Stabilizer, StableConfig, same_layout
from tests.conftest import REPO, cli

W, H, GAP, Y = 40, 60, 20, 100  # digit boxes: 40x60 px, 20 px apart, top at y=100


def record(reading: str, shift: tuple[int, int] = (0, 0), confidence: float = 0.9) -> dict:
    """A camera record of `reading`, digits side by side, boxes moved by `shift` pixels."""
    dx, dy = shift
    return {"reading": reading, "digits": [
        {"digit": int(c), "confidence": confidence, "box": [10 + i * (W + GAP) + dx, Y + dy, W, H]}
        for i, c in enumerate(reading)]}


def feed(s: Stabilizer, readings: list) -> list[dict]:
    return [s.update(r if isinstance(r, dict) else record(r)) for r in readings]


def test_flickering_digit_one_frame_in_three_still_reads_right():
    """The floor: the last digit reads 5 instead of 9 in every third frame."""
    s = Stabilizer(StableConfig(frames=3))
    frames = ["1239", "1239", "1235"] * 10
    out = feed(s, frames)
    assert [o["stable"] for o in out] == [None] + ["1239"] * 29
    assert [i for i, o in enumerate(out) if o["changed"]] == [1]
    assert "suspect" not in str(out)


def test_flicker_in_different_digits_is_voted_away():
    s = Stabilizer(StableConfig(frames=3))
    out = feed(s, ["4711", "4741", "4711", "4711", "9711", "4711", "4717", "4711"])
    assert [o["stable"] for o in out[:2]] == [None, None]  # 2 of 3 frames disagree on a digit
    assert {o["stable"] for o in out[2:]} == {"4711"}


def test_per_frame_readings_without_voting_would_flicker():
    """The same misreads with --stable 1 change the reading every third frame: voting is what fixes it."""
    s = Stabilizer(StableConfig(frames=1))
    out = feed(s, ["1239", "1239", "1235"] * 3)
    assert sum(o["changed"] for o in out) == 6


def test_a_real_change_is_adopted_once_the_window_agrees():
    s = Stabilizer(StableConfig(frames=5))
    out = feed(s, ["0042"] * 5 + ["0043"] * 5)
    stable = [o["stable"] for o in out]
    assert stable[:2] == [None, None] and stable[2:7] == ["0042"] * 5 and stable[7:] == ["0043"] * 3
    assert [i for i, o in enumerate(out) if o["changed"]] == [2, 7]  # 3 of 5 frames are a majority


def test_a_dropped_digit_or_an_empty_frame_does_not_change_the_stable_reading():
    s = Stabilizer(StableConfig(frames=3))
    out = feed(s, ["815", "815", "81", "", "815", "", ""])
    assert [o["stable"] for o in out] == [None, "815", "815", "815", "815", "815", "815"]
    assert sum(o["changed"] for o in out) == 1


def test_boxes_must_stay_roughly_in_place():
    s = Stabilizer(StableConfig(frames=3))
    assert same_layout(record("12")["digits"], record("12", (15, -20))["digits"], 0.5)
    assert not same_layout(record("12")["digits"], record("12", (40, 0))["digits"], 0.5)
    # the same digits jumping around the frame (different things in view) never agree
    out = feed(s, [record("12"), record("12", (200, 0)), record("12", (0, 200))])
    assert [o["stable"] for o in out] == [None, None, None]
    out = feed(s, [record("12", (5, 5)), record("12", (-5, 0))])
    assert [o["stable"] for o in out] == [None, "12"]  # back in place for 2 of 3 frames
    assert s.digits[0]["box"] == [5, 100, 40, 60]


def test_stable_digits_carry_mean_confidence_of_their_voters():
    s = Stabilizer(StableConfig(frames=3))
    feed(s, [record("7", confidence=0.8), record("1", confidence=0.99), record("7", confidence=0.9)])
    assert s.reading == "7" and s.digits[0]["confidence"] == pytest.approx(0.85)
    assert s.confidence == pytest.approx(0.85)


def test_monotonic_flags_a_smaller_reading_and_keeps_the_stable_one():
    s = Stabilizer(StableConfig(frames=1, monotonic=True))
    out = feed(s, ["1234", "1235", "1228", "1236"])
    assert [o["stable"] for o in out] == ["1234", "1235", "1235", "1236"]
    assert out[2]["suspect"] == "1228 is less than the stable 1235 (--monotonic)"
    assert out[2]["changed"] is False
    assert all("suspect" not in o for i, o in enumerate(out) if i != 2)


def test_max_step_flags_a_jump():
    s = Stabilizer(StableConfig(frames=1, max_step=5))
    out = feed(s, ["100", "104", "184", "099", "109"])
    assert [o["stable"] for o in out] == ["100", "104", "104", "099", "099"]
    assert out[2]["suspect"] == "184 is 80 away from the stable 104 (--max-step 5)"
    assert "suspect" not in out[3]  # down by 5: allowed without --monotonic
    assert out[4]["suspect"].startswith("109 is 10 away")


def test_suspect_is_reported_on_every_frame_it_persists():
    s = Stabilizer(StableConfig(frames=3, monotonic=True))
    out = feed(s, ["50"] * 3 + ["49"] * 4)
    assert [("suspect" in o) for o in out] == [False] * 4 + [True] * 3
    assert s.reading == "50"


@pytest.mark.parametrize("cfg, expect", [
    (StableConfig(frames=0), "--stable 0: expected 1 or more"),
    (StableConfig(max_step=-1), "--max-step -1: expected 0 or more"),
])
def test_bad_settings_are_user_errors(cfg, expect):
    with pytest.raises(UserError, match=expect):
        Stabilizer(cfg)


def test_camera_holds_the_stable_reading_through_a_misread_every_third_frame(tmp_path, mnist):
    """End to end: real frames where one frame in three shows another last digit in the same place."""
    model = REPO / "models" / "model_int8.tflite"
    clf, pick = Classifier(model), np.random.default_rng(5)

    def scene(idx, seed):
        frame, _ = make_frame(list(mnist.x_test[idx]), np.random.default_rng(seed))
        return frame, read_frame(Frame(frame, "bgr", 0.0, 0), clf, 0.6)

    for seed in range(100):  # frames the model reads right, whose boxes line up
        idx = pick.integers(0, len(mnist.x_test), 3)
        other = pick.integers(0, len(mnist.x_test))
        if mnist.y_test[other] == mnist.y_test[idx[2]]:
            continue
        (good, rg), (bad, rb) = scene(idx, seed), scene([*idx[:2], other], seed)
        truth = "".join(str(int(mnist.y_test[i])) for i in idx)
        if rg["reading"] == truth and rb["reading"] == truth[:2] + str(int(mnist.y_test[other])) and \
                same_layout(rg["digits"], rb["digits"], StableConfig.box_tolerance):
            break
    else:
        pytest.fail("no usable scene")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate([good, good, bad] * 4):
        cv2.imwrite(str(folder / f"{i:02d}.png"), f)
    r = cli("camera", "--source", str(folder), "--model", str(model), timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["reading"] == truth for x in lines] == [True, True, False] * 4  # the flicker is real
    assert [x["stable"] for x in lines] == [None] + [truth] * 11
    assert [x["frame"] for x in lines if x["changed"]] == [1]
