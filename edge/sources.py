"""Frame sources behind one interface: a Pi camera, an OpenCV camera/video/stream, a folder of images.

    >>> import cv2, numpy as np, tempfile
    >>> from edge.sources import frames, open_source
    >>> photos = tempfile.mkdtemp()
    >>> for name in ("img2.png", "img10.png"):
    ...     _ = cv2.imwrite(f"{photos}/{name}", np.full((48, 64, 3), 200, np.uint8))
    >>> with open_source(photos) as src:          # or "picamera", "0", "clip.avi", "rtsp://..."
    ...     for frame in frames(src):
    ...         print(frame.index, frame.name, frame.image.shape, frame.color_order)
    0 img2.png (48, 64, 3) bgr
    1 img10.png (48, 64, 3) bgr

Every frame carries its capture time and the channel order it is in memory, which is all
`edge.digits.to_grey` needs. A camera or stream that stops giving frames is reopened with
exponential backoff (`RetryConfig`); the end of a video file or a folder is a normal end. A file in a
folder that cannot be decoded is logged and skipped. OpenCV is imported here (the 'camera' extra);
picamera2 only when a Pi camera is opened.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from edge.errors import UserError
from edge.images import ImageError, read_image, shown

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")
NETWORK_TIMEOUT_MS = 5000  # OpenCV's open and read timeouts for a stream (its default is 30 s)
SOURCE_HELP = "'picamera', a camera index (0), a folder of images, an image or video file, or a URL"


def _cv2():
    try:
        import cv2
    except ImportError:
        raise UserError("--source: OpenCV is not installed (pip install 'mnist-edge[camera]')") from None
    if not log.isEnabledFor(logging.DEBUG):  # OpenCV's and FFmpeg's own stderr lines (shown with
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # MNIST_EDGE_LOG=DEBUG); ours say
        if "OPENCV_LOG_LEVEL" not in os.environ:  # what went wrong in one line
            if hasattr(cv2.utils, "logging"):  # OpenCV 5
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            else:  # OpenCV 4, what numpy 1 installs get (tflite-runtime): 2 is LOG_LEVEL_ERROR
                cv2.setLogLevel(2)
    return cv2


@dataclass
class Frame:
    """One captured frame."""

    image: np.ndarray  # what inference reads: HxW grey (or a Y plane), HxWx3 or HxWx4 uint8
    color_order: str  # channel order of `image` in memory, as edge.digits.to_grey names it
    t: float  # capture time, Unix seconds
    index: int  # 0-based number of the frame in its source
    name: str | None = None  # the file it came from (image folders), else None
    display: np.ndarray | None = None  # a bigger view of the same moment to show (Pi camera's main)
    display_order: str | None = None  # channel order of `display`


@dataclass
class RetryConfig:
    """How a live source (camera, stream) is reconnected when it stops giving frames."""

    max_retries: int = 10  # consecutive failed reads before giving up; -1: never give up
    initial_delay: float = 0.5  # seconds before the first reconnect
    factor: float = 2.0  # each further reconnect waits this many times longer...
    max_delay: float = 10.0  # ...but never longer than this (seconds)

    def delay(self, attempt: int) -> float:
        """Wait before reconnect number `attempt` (1-based)."""
        return min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))


class SourceLost(Exception):
    """A live source gave no frame after every retry (not a user error: the device went away)."""


class Source:
    """The interface: `read()` a Frame or None, `reopen()` after a failure, `close()`.

    `live` sources (cameras, streams) are retried when `read()` fails or returns None; for the
    others (files, folders) None means the end.
    """

    name: str = "source"
    live: bool = False

    def __init__(self) -> None:
        self._count = 0

    def read(self) -> Frame | None:
        raise NotImplementedError

    def reopen(self) -> None:
        """Reconnect after a failed read (live sources)."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def _frame(self, image: np.ndarray, color_order: str, name: str | None = None,
               display: np.ndarray | None = None, display_order: str | None = None) -> Frame:
        f = Frame(image, color_order, time.time(), self._count, name, display, display_order)
        self._count += 1
        return f

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ImageFilesSource(Source):
    """Image files in the order given (a folder's, naturally sorted); undecodable files are skipped."""

    def __init__(self, paths: list[Path], name: str):
        super().__init__()
        self.paths, self.name, self._next = list(paths), name, 0
        self.skipped: list[Path] = []  # files that could not be decoded
        self._cv2 = _cv2()

    def read(self) -> Frame | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            try:
                image = read_image(path)  # BGR; bytes decoded, so any file name is safe
            except ImageError as e:
                log.warning("%s; skipped", e)
                self.skipped.append(path)
                continue
            return self._frame(image, "bgr", name=shown(path.name))
        return None


def _not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return False
    except UnicodeEncodeError:  # bytes that were not UTF-8, surrogate-escaped by the OS layer
        return True


def _natural_key(path: Path):
    """'img2.png' before 'img10.png'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def images_in(folder: Path) -> list[Path]:
    """Image files in a folder (by suffix), naturally sorted; other files are ignored."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


class OpenCVSource(Source):
    """cv2.VideoCapture: a camera index or stream URL (live, reconnected) or a video file (ends).

    A stream (URL) is opened and read with OpenCV's timeouts, in a worker thread, so setting `stop`
    ends a wait on a silent network at once instead of after OpenCV's own 30 s.
    """

    def __init__(self, target: int | str, live: bool, stop: threading.Event | None = None):
        super().__init__()
        self.target, self.live, self.stop = target, live, stop
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.cap = None
        self._cv2 = _cv2()
        self._network = isinstance(target, str) and "://" in target
        if isinstance(target, str) and _not_utf8(target):
            raise UserError(f"--source {shown(str(target))}: the name is not valid UTF-8 text, which "
                            "OpenCV's video reader cannot open (it crashes): rename the file")
        self._worker: threading.Thread | None = None  # a call still running after `stop` was set
        if not self._call(self._open):
            if self._stopped():
                return  # stopped while opening: frames() ends at once
            if isinstance(target, int):
                raise UserError(f"--source {target}: OpenCV cannot open camera {target} (is it connected? "
                                "see ls /dev/video*; a Pi camera module is --source picamera)")
            what = "stream" if live else "video file"
            raise UserError(f"--source {target}: OpenCV cannot open this {what}")

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _call(self, fn):
        """fn() here for local devices and files; for streams in a worker, given up when `stop` is set
        (the worker then owns the capture and releases it when OpenCV returns)."""
        if not self._network:
            return fn()
        box: dict = {}
        done = threading.Event()

        def work():
            try:
                box["value"] = fn()
            except Exception as e:  # handed to the caller
                box["error"] = e
            finally:
                done.set()
                if self._worker is threading.current_thread() and self.cap is not None:
                    self.cap.release()  # given up on and closed meanwhile: release it here

        worker = threading.Thread(target=work, name="mnist-edge-capture", daemon=True)
        worker.start()
        while not done.wait(0.05):
            if self._stopped():
                self._worker = worker
                return None
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _open(self) -> bool:
        cv2 = self._cv2
        if self._network:
            self.cap = cv2.VideoCapture(self.target, cv2.CAP_ANY, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                NETWORK_TIMEOUT_MS])
        else:
            self.cap = cv2.VideoCapture(self.target)
        if not self.cap.isOpened():
            self.cap.release()
            self.cap = None
            return False
        return True

    def read(self) -> Frame | None:
        if self.cap is None or self._worker is not None:
            return None
        got = self._call(self.cap.read)
        ok, image = got if got is not None else (False, None)
        return self._frame(image, "bgr") if ok and image is not None else None

    def reopen(self) -> None:
        self.close()
        if self._worker is None and not self._call(self._open) and not self._stopped():
            raise OSError(f"cannot open {self.name}")

    def close(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return  # a read or open is still inside OpenCV: its worker releases the capture
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class PicameraSource(Source):
    """A Raspberry Pi camera through picamera2 (libcamera): two streams of the same moment.

    'main' (XRGB8888, B,G,R,X in memory) is for display; the small YUV420 'lores' stream's Y plane
    (its first `height` rows) is what inference reads, so no colour conversion runs per frame.
    """

    live = True

    def __init__(self, main_size: tuple[int, int] = (640, 480), lores_size: tuple[int, int] = (320, 240)):
        super().__init__()
        self.name, self.main_size, self.lores_size = "picamera", main_size, lores_size
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError("--source picamera: picamera2 is not installed (on Raspberry Pi OS: "
                            "sudo apt install python3-picamera2, and make the venv with "
                            "--system-site-packages)") from None
        self._Picamera2, self.cam = Picamera2, None
        try:
            self._open()
        except Exception as e:
            raise UserError(f"--source picamera: cannot start the camera ({e})") from None

    def _open(self) -> None:
        self.cam = self._Picamera2()
        config = self.cam.create_video_configuration(
            main={"size": self.main_size, "format": "XRGB8888"},
            lores={"size": self.lores_size, "format": "YUV420"})
        self.cam.configure(config)
        self.cam.start()

    def read(self) -> Frame | None:
        if self.cam is None:
            return None
        (main, yuv), _ = self.cam.capture_arrays(["main", "lores"])  # one request: same moment
        w, h = self.lores_size
        return self._frame(yuv[:h, :w], "grey", display=main, display_order="xrgb8888")

    def reopen(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        if self.cam is not None:
            cam, self.cam = self.cam, None
            try:
                cam.stop()
            finally:
                cam.close()


def open_source(spec: str, stop: threading.Event | None = None) -> Source:
    """'picamera' | a camera index ('0') | a folder | an image or video file | a URL (rtsp://...).

    `stop` (a stream only) gives up a blocked open or read at once when it is set.
    """
    s = str(spec).strip()
    if not s:  # Path("") is the current folder: never read that by accident
        raise UserError(f"--source {spec!r}: empty; expected {SOURCE_HELP}")
    if s.lower() in ("picamera", "picamera2"):
        return PicameraSource()
    if s.isdigit():
        return OpenCVSource(int(s), live=True)
    if s.lower().startswith("file://"):  # a file, even as a URL: its end is an end, not a disconnect
        s = url2pathname(urlparse(s).path)
    elif "://" in s:
        return OpenCVSource(s, live=True, stop=stop)
    path = Path(s).expanduser()
    if path.is_dir():
        files = images_in(path)
        if not files:
            raise UserError(f"--source {spec}: no images in this folder "
                            f"(looked for {', '.join(IMAGE_SUFFIXES)})")
        return ImageFilesSource(files, name=str(path))
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFilesSource([path], name=str(path))
        return OpenCVSource(str(path), live=False)
    raise UserError(f"--source {spec}: no such file or folder; expected {SOURCE_HELP}")


def frames(source: Source, retry: RetryConfig | None = None,
           stop: threading.Event | None = None) -> Iterator[Frame]:
    """Frames until the source ends or `stop` is set; a live source is reconnected with backoff.

    Raises SourceLost when a live source fails `retry.max_retries` times in a row.
    """
    retry = retry or RetryConfig()
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        try:
            frame, why = source.read(), "no frame"
        except Exception as e:
            if not source.live:
                raise SourceLost(f"{source.name}: read failed ({e.__class__.__name__}: {e})") from e
            frame, why = None, f"{e.__class__.__name__}: {e}"
        if frame is not None:
            if failures:
                log.info("%s: frames again after %d failed read(s)", source.name, failures)
            failures = 0
            yield frame
            continue
        if not source.live or stop.is_set():  # a read given up because we are stopping is no failure
            return
        failures += 1
        if 0 <= retry.max_retries < failures:
            raise SourceLost(f"{source.name}: no frame after {retry.max_retries} reconnect attempts; "
                             "giving up")
        delay = retry.delay(failures)
        limit = "unlimited" if retry.max_retries < 0 else str(retry.max_retries)
        log.warning("%s: %s; reconnecting in %.2f s (attempt %d of %s)", source.name, why, delay,
                    failures, limit)
        if stop.wait(delay):
            return
        try:
            source.reopen()
        except Exception as e:
            log.warning("%s: reconnect failed (%s: %s)", source.name, e.__class__.__name__, e)
