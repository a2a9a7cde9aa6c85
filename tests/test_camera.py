"""`mnist-edge camera` end to end (folder, video file, signals, bad flags) and its loop in-process
(a camera that drops out, a bad frame, colour orders, a Pi camera's two streams).

The camera *sources* are faked where no device exists here; the model always runs in its real runtime.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.synthetic import blank_frame, make_frame, noise_frame
from edge.camera import CameraConfig, annotate, read_frame, run
from edge.classifier import Classifier
from edge.digits import to_bgr, to_grey
from edge.hub import FrameHub
from edge.sources import Frame, OpenCVSource, PicameraSource, RetryConfig, Source, frames
from edge.web import WebServer
from tests.conftest import REPO, cli

KEYS = {"t", "frame", "reading", "digits", "found_by", "ms"}
MS_KEYS = {"capture", "preprocess", "inference", "total"}
SHIPPED = REPO / "models" / "model_int8.tflite"


def scenes(mnist, n: int, seed: int) -> list[tuple[np.ndarray, str, list]]:
    """n synthetic BGR frames of 1-4 MNIST test digits: (frame, true reading, true boxes)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx = rng.integers(0, len(mnist.x_test), int(rng.integers(1, 5)))
        frame, boxes = make_frame(list(mnist.x_test[idx]), rng)
        out.append((frame, "".join(str(int(d)) for d in mnist.y_test[idx]), boxes))
    return out


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def covers(found: list[int], true: tuple) -> bool:
    """Does a found box (x, y, w, h) contain the true box's centre, and is it about its size?"""
    x, y, w, h = found
    tx, ty, tw, th = true
    cx, cy = tx + tw / 2, ty + th / 2
    return x <= cx <= x + w and y <= cy <= y + h and 0.5 < h / th < 2.0


@pytest.fixture(scope="module")
def model(exported) -> Path:
    return exported[0] / "model_int8.tflite"


@pytest.fixture(scope="module")
def classifier(model) -> Classifier:
    return Classifier(model)


@pytest.fixture(scope="module")
def digit_scenes(mnist):
    return scenes(mnist, 4, seed=7)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, digit_scenes) -> Path:
    """frame1-4.png digits, frame5.png blank paper, frame6.png noise, a corrupt frame7.png, notes.txt."""
    d = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(1)
    for i, (frame, _, _) in enumerate(digit_scenes, start=1):
        cv2.imwrite(str(d / f"frame{i}.png"), frame)
    cv2.imwrite(str(d / "frame5.png"), blank_frame(rng))
    cv2.imwrite(str(d / "frame6.png"), noise_frame(rng))
    (d / "frame7.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "notes.txt").write_text("not an image; ignored")
    return d


@pytest.fixture(scope="module")
def folder_run(folder, model):
    """The folder read with --min-confidence 0: every digit found is reported."""
    r = cli("camera", "--source", str(folder), "--model", str(model), "--min-confidence", "0",
            timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_folder_source_end_to_end(folder_run, digit_scenes):
    t_end = time.time()
    records = json_lines(folder_run.stdout)
    # natural order; the corrupt file is skipped with a log line, notes.txt ignored
    assert [r["file"] for r in records] == [f"frame{i}.png" for i in range(1, 7)]
    assert [r["frame"] for r in records] == list(range(6))
    assert "frame7.png: cannot decode it as an image" in folder_run.stderr
    assert "; skipped" in folder_run.stderr
    for r in records:
        assert KEYS <= set(r) and set(r["ms"]) == MS_KEYS
        assert t_end - 120 < r["t"] <= t_end
        assert r["ms"]["total"] >= r["ms"]["preprocess"] + r["ms"]["inference"] > 0
        assert r["reading"] == "".join(str(d["digit"]) for d in r["digits"])
        xs = [d["box"][0] for d in r["digits"]]
        assert xs == sorted(xs)  # left to right
    for r, (_, truth, boxes) in zip(records[:4], digit_scenes, strict=True):
        assert len(r["digits"]) == len(truth), (r, truth)
        for d, box in zip(r["digits"], boxes, strict=True):
            assert covers(d["box"], box), (d, box)
            assert 0.0 <= d["confidence"] <= 1.0
    assert records[4]["digits"] == [] and records[4]["reading"] == ""  # blank paper
    assert records[5]["digits"] == [] and records[5]["reading"] == ""  # sensor noise


def test_min_confidence_drops_unsure_digits(folder, model, folder_run):
    """The default 0.6 keeps exactly the digits of the 0-threshold run that reach 0.6."""
    r = cli("camera", "--source", str(folder), "--model", str(model), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    for everything, kept in zip(json_lines(folder_run.stdout), json_lines(r.stdout), strict=True):
        assert kept["digits"] == [d for d in everything["digits"] if d["confidence"] >= 0.6]
        assert kept["reading"] == "".join(str(d["digit"]) for d in kept["digits"])
    r = cli("camera", "--source", str(folder), "--model", str(model), "--min-confidence", "1",
            timeout=120)
    assert r.returncode == 0  # only digits read as sure as can be (1.0 to 4 decimals) are left
    assert all(d["confidence"] == 1.0 for x in json_lines(r.stdout) for d in x["digits"])
    assert sum(len(x["digits"]) for x in json_lines(r.stdout)) < sum(len(x["digits"])
                                                                     for x in json_lines(folder_run.stdout))


def test_min_confidence_threshold_in_process(classifier, digit_scenes):
    frame = Frame(digit_scenes[3][0], "bgr", time.time(), 0)
    every = read_frame(frame, classifier, 0.0)["digits"]
    assert every
    for t in sorted({0.0, 0.5, 0.9, 0.99, 1.0} | {d["confidence"] for d in every}):
        kept = read_frame(frame, classifier, t)
        assert kept["digits"] == [d for d in every if d["confidence"] >= t]


def _write_video(path: Path, images: list[np.ndarray], fps: float = 5.0) -> None:
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for img in images:
        writer.write(img)
    writer.release()


def test_video_file_source_end_to_end(tmp_path, model, digit_scenes):
    video = tmp_path / "clip.avi"
    _write_video(video, [s[0] for s in digit_scenes] + [blank_frame(np.random.default_rng(2))])
    r = cli("camera", "--source", str(video), "--model", str(model), "--min-confidence", "0",
            timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    records = json_lines(r.stdout)
    assert [x["frame"] for x in records] == list(range(5))
    assert "reconnecting" not in r.stderr  # the end of a file is the end, not a lost camera
    for x, (_, truth, boxes) in zip(records[:4], digit_scenes, strict=True):
        assert KEYS <= set(x) and "file" not in x
        assert len(x["digits"]) == len(truth), (x, truth)
        assert all(covers(d["box"], b) for d, b in zip(x["digits"], boxes, strict=True))
    assert records[4]["digits"] == []
    r = cli("camera", "--source", str(video), "--model", str(model), "--max-frames", "2", timeout=120)
    assert r.returncode == 0 and [x["frame"] for x in json_lines(r.stdout)] == [0, 1]


class ScriptedCamera(Source):
    """A live source following a script: an image, None (no frame) or an exception, then None forever."""

    live = True
    name = "scripted camera"

    def __init__(self, script: list):
        super().__init__()
        self.script, self.reopened, self.closed = list(script), 0, 0

    def read(self):
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return None if step is None else self._frame(step, "bgr")

    def reopen(self):
        self.reopened += 1

    def close(self):
        self.closed += 1


def test_camera_that_drops_out_is_retried_with_backoff(model, digit_scenes, caplog):
    img, img2 = digit_scenes[0][0], digit_scenes[1][0]  # a live camera's frames after a reconnect
    cam = ScriptedCamera([img, img, None, OSError("device unplugged"), img2, img2])  # are new ones
    retry = RetryConfig(max_retries=3, initial_delay=0.05, factor=2.0, max_delay=0.1)
    out = io.StringIO()
    caplog.set_level(logging.INFO)
    t0 = time.perf_counter()
    code = run(CameraConfig(model=str(model), min_confidence=0.0), source=cam, retry=retry, out=out)
    seconds = time.perf_counter() - t0
    assert code == 1  # the camera never came back after the last frame: given up, no traceback
    assert [r["frame"] for r in json_lines(out.getvalue())] == [0, 1, 2, 3]
    warnings = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]
    assert [w.split("reconnecting in ")[1] for w in warnings] == [
        "0.05 s (attempt 1 of 3)", "0.10 s (attempt 2 of 3)",  # a missing frame, then an exception
        "0.05 s (attempt 1 of 3)", "0.10 s (attempt 2 of 3)", "0.10 s (attempt 3 of 3)"]  # capped
    assert "OSError: device unplugged" in warnings[1]
    assert any("frames again after 2 failed read(s)" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.ERROR and "giving up" in r.getMessage() for r in caplog.records)
    assert cam.reopened == 5 and cam.closed >= 1
    assert seconds >= 0.05 + 0.1 + 0.05 + 0.1 + 0.1  # it really waited between attempts



def test_a_stream_that_only_repeats_its_last_frame_is_given_up(model, digit_scenes, caplog):
    """Another camera's --serve page whose source has ended sends each new client its last frame,
    then nothing: every reconnect 'worked', so --max-retries never tripped and camera read that one
    frame forever. A reconnect that brings back only the frame from before it is a failed read."""
    img = digit_scenes[0][0]
    cam = ScriptedCamera([img, None] + [img, None] * 10)  # after each reopen: the same frame, then none
    retry = RetryConfig(max_retries=3, initial_delay=0.01, factor=1.0, max_delay=0.01)
    out = io.StringIO()
    code = run(CameraConfig(model=str(model), min_confidence=0.0), source=cam, retry=retry, out=out)
    assert code == 1 and [r["frame"] for r in json_lines(out.getvalue())] == [0]
    warnings = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]
    assert len(warnings) == 3 and "only the frame from before the reconnect" in warnings[1]
    assert cam.reopened == 3

class IPCamera:
    """An MJPEG-over-HTTP camera (edge.web's server) publishing `images` round and round."""

    def __init__(self, images: list[np.ndarray], port: int = 0, fps: float = 20.0):
        self.hub = FrameHub()
        self.server = WebServer("127.0.0.1", port, self.hub).start()
        self.url = self.server.url + "stream.mjpg"
        self._stop = threading.Event()

        def publish():
            i = 0
            while not self._stop.wait(1 / fps):
                self.hub.publish(images[i % len(images)], {"frame": i})
                i += 1

        threading.Thread(target=publish, daemon=True).start()

    def unplug(self):
        self._stop.set()
        self.server.stop()


def test_stream_that_drops_is_reconnected(digit_scenes, caplog):
    """A real OpenCV capture of an HTTP stream: the server goes away, comes back on the same port."""
    caplog.set_level(logging.INFO)
    cam = IPCamera([s[0] for s in digit_scenes])
    port = int(cam.url.split(":")[2].split("/")[0])
    src = OpenCVSource(cam.url, live=True)
    got, t_unplug, cams = [], None, [cam]
    retry = RetryConfig(max_retries=20, initial_delay=0.1, factor=1.5, max_delay=0.5)
    plug_back = threading.Timer(0.5, lambda: cams.append(IPCamera([digit_scenes[0][0]], port)))
    try:
        for f in frames(src, retry):
            got.append(f)
            if len(got) == 5:
                cam.unplug()
                t_unplug = time.monotonic()
                plug_back.start()
            if len(got) == 10:
                break
    finally:
        src.close()
        plug_back.cancel()
        if plug_back.ident is not None:
            plug_back.join()
        for c in cams:
            c.unplug()
    assert len(got) == 10 and [f.index for f in got] == list(range(10))
    assert got[-1].image.shape == (480, 640, 3) and got[-1].color_order == "bgr"
    messages = [r.getMessage() for r in caplog.records]
    assert any("reconnecting in 0.10 s (attempt 1 of 20)" in m for m in messages), messages
    assert any("frames again after" in m for m in messages), messages
    assert time.monotonic() - t_unplug >= 0.5


def test_cli_gives_up_on_a_lost_stream(model, digit_scenes):
    cam = IPCamera([s[0] for s in digit_scenes])
    exe = Path(sys.executable).parent / "mnist-edge"
    p = subprocess.Popen([str(exe), "camera", "--source", cam.url, "--model", str(model),
                          "--max-retries", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        for _ in range(3):
            assert json.loads(p.stdout.readline())["reading"] is not None
        cam.unplug()
        out, err = p.communicate(timeout=60)
    finally:
        cam.unplug()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert "reconnecting in 0.50 s (attempt 1 of 2)" in err and "(attempt 2 of 2)" in err
    assert err.rstrip().splitlines()[-1].startswith("ERROR edge.camera: ") and "giving up" in err


def test_stop_event_interrupts_the_backoff():
    cam = ScriptedCamera([])
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t0 = time.perf_counter()
    assert list(frames(cam, RetryConfig(max_retries=-1, initial_delay=30.0), stop)) == []
    assert time.perf_counter() - t0 < 5


class ListSource(Source):
    """A finite source of given images (any dtype/shape: the loop must survive bad ones)."""

    name = "list"

    def __init__(self, images):
        super().__init__()
        self.images = list(images)

    def read(self):
        return self._frame(self.images.pop(0), "bgr") if self.images else None


def test_bad_frame_is_logged_and_skipped(model, digit_scenes, caplog):
    good = digit_scenes[1][0]
    src = ListSource([good, good.astype(np.float32), np.zeros((480, 640, 2), np.uint8), good])
    out = io.StringIO()
    assert run(CameraConfig(model=str(model), min_confidence=0.0), source=src, out=out) == 0
    assert [r["frame"] for r in json_lines(out.getvalue())] == [0, 3]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped[0].startswith("frame 1: skipped (ValueError") and "dtype float32" in skipped[0]
    assert skipped[1].startswith("frame 2: skipped (ValueError")


def test_a_source_whose_every_frame_fails_to_read_is_an_error(model, digit_scenes):
    """Frames that arrive but none of which can be read end in one UserError naming the source,
    not a quiet "0 frames" and exit 0 (a bad frame among good ones is skipped: the test above)."""
    from edge.errors import UserError

    good = digit_scenes[1][0]
    src = ListSource([good.astype(np.float32), np.zeros((480, 640, 2), np.uint8)])
    out = io.StringIO()
    with pytest.raises(UserError, match="^--source list: no frame in it could be read$"):
        run(CameraConfig(model=str(model), min_confidence=0.0), source=src, out=out)
    assert out.getvalue() == ""


def test_bgr_and_rgb_frames_give_identical_readings(classifier, digit_scenes):
    bgr = digit_scenes[2][0]
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert not np.array_equal(to_grey(bgr, "bgr"), to_grey(rgb, "bgr"))  # the colour cast matters
    xrgb = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])  # picamera2 XRGB8888: B,G,R,X
    reads = [read_frame(Frame(img, order, 0.0, 0), classifier, 0.0)
             for img, order in ((bgr, "bgr"), (rgb, "rgb"), (xrgb, "xrgb8888"))]
    assert reads[0]["digits"]
    assert reads[0]["digits"] == reads[1]["digits"] == reads[2]["digits"]
    assert reads[0]["reading"] == reads[1]["reading"] == reads[2]["reading"]
    assert np.array_equal(to_bgr(rgb, "rgb"), bgr) and np.array_equal(to_bgr(xrgb, "xrgb8888"), bgr)


def _fake_picamera2(frame_bgr: np.ndarray, fail_reads: int = 0):
    """A stand-in picamera2 module: main XRGB8888 and lores YUV420 of the same scene."""
    calls = {"configs": [], "instances": 0, "closed": 0}
    fails = [fail_reads]

    class Picamera2:
        def __init__(self):
            calls["instances"] += 1

        def create_video_configuration(self, main, lores):
            return {"main": main, "lores": lores}

        def configure(self, config):
            calls["configs"].append(config)
            self.config = config

        def start(self):
            pass

        def capture_arrays(self, names):
            if fails[0]:
                fails[0] -= 1
                raise RuntimeError("camera timed out")
            (mw, mh), (lw, lh) = self.config["main"]["size"], self.config["lores"]["size"]
            main = cv2.resize(frame_bgr, (mw, mh), interpolation=cv2.INTER_AREA)
            y = to_grey(cv2.resize(frame_bgr, (lw, lh), interpolation=cv2.INTER_AREA), "bgr")
            yuv = np.vstack([y, np.full((lh // 2, lw), 128, np.uint8)])  # Y rows, then U and V
            return [np.dstack([main, np.full((mh, mw), 255, np.uint8)]), yuv], {}

        def stop(self):
            pass

        def close(self):
            calls["closed"] += 1

    return types.SimpleNamespace(Picamera2=Picamera2), calls


def test_picamera_source_reads_the_lores_y_plane(monkeypatch, classifier, digit_scenes):
    scene = digit_scenes[0][0]
    module, calls = _fake_picamera2(scene, fail_reads=1)
    monkeypatch.setitem(sys.modules, "picamera2", module)
    src = PicameraSource()  # inference at the 640x480 the reading path is measured at
    assert calls["configs"][0] == {"main": {"size": (640, 480), "format": "XRGB8888"},
                                   "lores": {"size": (640, 480), "format": "YUV420"}}
    src.close()
    src = PicameraSource(main_size=(1280, 960))  # a bigger live view: boxes scale up to it
    got = list(frames(src, RetryConfig(initial_delay=0.01), stop=_stop_after(src, 1)))
    assert calls["instances"] == 3 and calls["closed"] == 2  # one timeout: reopened
    f = got[0]
    assert f.image.shape == (480, 640) and f.display.shape == (960, 1280, 4)
    assert read_frame(f, classifier, 0.0)["digits"] == read_frame(Frame(scene, "bgr", 0.0, 0),
                                                                  classifier, 0.0)["digits"]
    record = read_frame(f, classifier, 0.0)
    assert record["digits"]
    shown = annotate(f, record)  # boxes drawn on the 1280x960 main stream, scaled from lores
    assert shown.shape == (960, 1280, 3)
    x, y, w, h = record["digits"][0]["box"]
    assert tuple(shown[2 * y, 2 * x + w]) == (0, 200, 0)  # top edge of the first box, scaled x2
    src.close()
    assert calls["closed"] == 3


def _stop_after(src: Source, n: int) -> threading.Event:
    """An event that is set once `src` has produced n frames."""
    stop = threading.Event()
    read = src.read

    def counting():
        f = read()
        if f is not None and f.index + 1 >= n:
            stop.set()
        return f

    src.read = counting
    return stop


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_the_loop_cleanly(tmp_path, model, digit_scenes, sig):
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), digit_scenes[i % 4][0])
    exe = Path(sys.executable).parent / "mnist-edge"
    p = subprocess.Popen([str(exe), "camera", "--source", str(tmp_path), "--model", str(model),
                          "--fps", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        first = p.stdout.readline()  # the first frame is out: the loop is running
        assert json.loads(first)["frame"] == 0
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err[-2000:]
    assert f"{signal.Signals(sig).name}: stopping" in err and "Traceback" not in err
    assert len(json_lines(out)) <= 1  # stopped long before the 6 frames at 1 frame/s


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_loop_while_stdouts_reader_is_not_reading(tmp_path, model, digit_scenes, sig):
    """`camera | slow-consumer`: once the pipe is full the loop waits in write(); the signal's
    handler only set the stop event, so the write went on waiting for as long as the reader did."""
    import fcntl
    import termios

    video = tmp_path / "long.avi"
    _write_video(video, [digit_scenes[i % 4][0] for i in range(2000)], fps=30)
    exe = Path(sys.executable).parent / "mnist-edge"
    r, w = os.pipe()  # a reader that never reads: 64 KiB of JSON lines fill it
    p = subprocess.Popen([str(exe), "camera", "--source", str(video), "--model", str(model), "--locator",
                          "none"], stdout=w, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    os.close(w)
    try:
        deadline = time.monotonic() + 120
        size = fcntl.fcntl(r, 1032)  # F_GETPIPE_SZ: 64 KiB with 4 KiB pages, 256 KiB with 16 KiB pages
        queued, still = -1, 0.0  # bytes in the pipe; for how long they have not grown
        while still < 1.0 or queued < size // 2:  # full: the loop is waiting in write()
            assert time.monotonic() < deadline and p.poll() is None, "the pipe never filled"
            time.sleep(0.1)
            now = int.from_bytes(fcntl.ioctl(r, termios.FIONREAD, b"\0" * 4), "little")
            queued, still = now, (still + 0.1 if now == queued else 0.0)
        t0 = time.monotonic()
        p.send_signal(sig)
        err = p.communicate(timeout=30)[1]
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
        os.close(r)
    assert p.returncode == 0, err[-2000:]
    assert "stopped while writing a reading to stdout" in err and "Traceback" not in err, err[-2000:]
    assert f"{signal.Signals(sig).name}: stopping" in err, err[-2000:]
    assert took < 10, took  # at once, not when the reader reads (it never would)


@pytest.mark.parametrize("args, expect", [
    (["--source", "/nonexistent/frames"], "--source /nonexistent/frames: no such file or folder"),
    (["--source", "{empty}"], "no images in this folder"),
    (["--source", "{junk_video}"], "OpenCV cannot open this video file"),
    (["--source", "picamera"], "--source picamera: picamera2 is not installed"),
    (["--source", "99"], "--source 99: OpenCV cannot open camera 99"),
    (["--source", "/dev/zero"], "--source /dev/zero: OpenCV cannot open camera /dev/zero"),  # a device:
    #   a camera by its path (/dev/video0, /dev/v4l/by-id/...), not refused as "no such file"
    (["--source", "{fifo}"], "fifo: neither a file, a folder nor a camera device"),
    (["--model", "/nonexistent/model.tflite"], "--model /nonexistent/model.tflite: no such file"),
    (["--model", "{junk_model}"], "junk.tflite: litert cannot load it"),
    (["--runtime", "tensorrt"], "--runtime tensorrt: expected one of"),
    (["--min-confidence", "1.5"], "--min-confidence 1.5: expected a number from 0 to 1"),
    (["--serve", "localhost:http"], "--serve localhost:http: expected HOST:PORT or PORT"),
    (["--show"], "--show:"),
])
def test_user_mistakes_are_one_line(tmp_path, folder, model, args, expect):
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "clip.mp4").write_bytes(os.urandom(2048))
    (tmp_path / "junk.tflite").write_bytes(b"TFL3" + os.urandom(512))
    subs = {"{empty}": str(tmp_path / "empty"), "{junk_video}": str(tmp_path / "clip.mp4"),
            "{junk_model}": str(tmp_path / "junk.tflite"), "{fifo}": str(tmp_path / "fifo")}
    args = [subs.get(a, a) for a in args]
    base = {"--source": str(folder), "--model": str(model)}
    for flag, value in base.items():
        if flag not in args:
            args += [flag, value]
    r = cli("camera", *args, env={"DISPLAY": "", "WAYLAND_DISPLAY": ""}, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = error_lines(r.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("mnist-edge camera: error: ") and expect in lines[0], lines[0]
    assert r.stdout == ""


def test_serve_on_a_busy_port_is_one_line(folder, model):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("camera", "--source", str(folder), "--model", str(model), "--serve",
                f"127.0.0.1:{port}", timeout=120)
    assert r.returncode == 2
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and f"--serve 127.0.0.1:{port}: cannot listen there" in lines[0], lines


def test_shipped_model_reads_synthetic_frames(mnist):
    """The accuracy check: the shipped int8 model through segment + classify on 100 frames.

    Digit-level: a digit counts as right only when its frame yields the right number of digits and
    it is read correctly in its place, so a missed or split digit costs its whole frame."""
    clf = Classifier(SHIPPED)
    right = total = 0
    for f, truth, _ in scenes(mnist, 100, seed=2026):
        reading = read_frame(Frame(f, "bgr", 0.0, 0), clf, 0.0)["reading"]
        total += len(truth)
        if len(reading) == len(truth):
            right += sum(a == b for a, b in zip(reading, truth, strict=True))
    print(f"shipped int8 model: {right}/{total} digits read right")
    assert right / total >= 0.97, f"{right}/{total} digits read right"
    rng = np.random.default_rng(3)
    for empty in [blank_frame(rng) for _ in range(3)] + [noise_frame(rng) for _ in range(3)]:
        assert read_frame(Frame(empty, "bgr", 0.0, 0), clf, 0.6)["reading"] == ""


# What Raspberry Pi OS's simplejpeg (under picamera2) raises when the venv's numpy is not the major
# version it was built against, and a picamera2 whose own dependency is missing.
BROKEN_PICAMERA2 = {
    "numpy": ("raise ValueError('numpy.dtype size changed, may indicate binary incompatibility. "
              "Expected 96 from C header, got 88 from PyObject')",
              "installed but does not import (ValueError: numpy.dtype size changed"),
    "libcamera": ("import libcamera_not_here",
                  "installed but does not import (ModuleNotFoundError: No module named "
                  "'libcamera_not_here')"),
}


@pytest.mark.parametrize("case", list(BROKEN_PICAMERA2))
def test_a_picamera2_that_does_not_import_is_one_line_with_its_cause(tmp_path, case):
    code, says = BROKEN_PICAMERA2[case]
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(code + "\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    r = cli("camera", "--source", "picamera", "--max-frames", "1", env=env, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("mnist-edge camera: error: --source picamera: picamera2 is " + says), lines[0]
    assert ("pip install '.[edge,picamera]'" in lines[0]) == (case == "numpy"), lines[0]  # the fix
    r = cli("doctor", env=env, timeout=120)
    row = next(ln for ln in r.stdout.splitlines() if "picamera2" in ln)
    assert "✗" in row and says in row and "not installed" not in row and row.count("picamera2") == 1, row


SIGNAL_INSIDE_THE_LOCK = """
import os, signal, sys, threading, time
from edge.cli import main

fired = []


def set_with_a_signal_inside(self):  # Event.set, with a SIGTERM landing while it holds its lock
    with self._cond:
        if threading.get_ident() == threading.main_thread().ident and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs here, this Event's lock held
        self._flag = True
        self._cond.notify_all()


threading.Event.set = set_with_a_signal_inside
code = main(["camera", "--source", sys.argv[1], "--locator", "none"])
print("fired" if fired else "not fired", code, file=sys.stderr)
sys.exit(code)
"""


def test_a_signal_landing_while_the_main_thread_holds_the_stop_events_lock(tmp_path, digit_scenes):
    """The main thread sets `stop` itself when stdout's reader goes; a SIGTERM landing just then, in
    Event.set with its lock held, once ran a handler that set the same Event: a deadlock only
    SIGKILL ended. The handler now takes no lock (a thread reading Python's wakeup pipe sets it)."""
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), digit_scenes[i][0])
    r, w = os.pipe()
    os.close(r)  # stdout's reader is gone before the first line: camera sets `stop` itself
    p = subprocess.run([sys.executable, "-c", SIGNAL_INSIDE_THE_LOCK, str(tmp_path)], stdout=w,
                       stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO)
    os.close(w)
    assert "fired 0" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
