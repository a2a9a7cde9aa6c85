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
folder that cannot be decoded is logged and skipped, as are frames of a video file that do not decode
(`edge.capture.BAD_FRAME_RUN`). The cameras, streams and video files are read
by the sources in `edge.capture` (OpenCV, the 'camera' extra; picamera2 for a Pi camera), imported
only when one is opened.
"""

from __future__ import annotations

import logging
import re
import stat
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
SOURCE_HELP = ("'picamera', a camera index (0) or device (/dev/video0), a folder of images, an image or "
               "video file, or a URL")


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
        from edge.images import import_cv2

        self._cv2 = import_cv2()  # its own log lines silenced

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


def _natural_key(path: Path):
    """'img2.png' before 'img10.png'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def images_in(folder: Path) -> list[Path]:
    """Image files in a folder (by suffix), naturally sorted; other files are ignored."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


def open_source(spec: str, stop: threading.Event | None = None) -> Source:
    """'picamera' | a camera index ('0') or device (/dev/video0) | a folder | an image or video file | a URL.

    `stop` (a stream only) gives up a blocked open or read at once when it is set.
    """
    from edge.capture import OpenCVSource, PicameraSource

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
    if _camera_device(path):  # /dev/video0, /dev/v4l/by-id/...: a camera by its device, reopened as one
        return OpenCVSource(str(path), live=True)
    if path.exists():
        raise UserError(f"--source {spec}: neither a file, a folder nor a camera device; "
                        f"expected {SOURCE_HELP}")
    raise UserError(f"--source {spec}: no such file or folder; expected {SOURCE_HELP}")


def _camera_device(path: Path) -> bool:
    """Whether `path` (or the device a /dev/v4l/by-id/... link names) is a character device: what a
    camera is on Linux, by a name that stays the same when several are plugged in."""
    try:
        return stat.S_ISCHR(path.stat().st_mode)
    except OSError:
        return False


def frames(source: Source, retry: RetryConfig | None = None,
           stop: threading.Event | None = None) -> Iterator[Frame]:
    """Frames until the source ends or `stop` is set; a live source is reconnected with backoff.

    Raises SourceLost when a live source fails `retry.max_retries` times in a row.
    """
    retry = retry or RetryConfig()
    stop = stop or threading.Event()
    failures, last = 0, None
    while not stop.is_set():
        try:
            frame, why = source.read(), "no frame"
        except Exception as e:
            if not source.live:
                raise SourceLost(f"{source.name}: read failed ({e.__class__.__name__}: {e})") from e
            frame, why = None, f"{e.__class__.__name__}: {e}"
        if frame is not None and failures and last is not None and np.array_equal(frame.image, last):
            # a reconnect that brings back only the frame given before it is not the source back:
            # another camera's --serve page whose source has ended sends each new client its last
            # frame, then nothing, and reading that forever never tripped --max-retries
            frame, why = None, "only the frame from before the reconnect (a stream whose source ended?)"
        if frame is not None:
            if failures:
                log.info("%s: frames again after %d failed read(s)", source.name, failures)
            failures, last = 0, frame.image
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


def __getattr__(name: str):
    """The capturing sources live in edge.capture; `from edge.sources import OpenCVSource` works too."""
    if name in ("OpenCVSource", "PicameraSource"):
        from edge import capture

        return getattr(capture, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
