"""The camera loop's frames and readings, handed to any number of readers without ever waiting.

    >>> import numpy as np
    >>> from edge.hub import FrameHub
    >>> hub = FrameHub()
    >>> hub.publish(np.zeros((48, 64, 3), np.uint8), {"frame": 0, "reading": "7"})
    >>> hub.latest()["reading"], hub.wait_jpeg(0, timeout=0)[1][:2]
    ('7', b'\\xff\\xd8')

One slot, always the newest: the loop publishes and goes on, a slow reader skips frames, and a
frame is JPEG-encoded at most once (annotated or as captured), only when a reader asks for it.
`edge.web` serves it to browsers and other devices.
"""

from __future__ import annotations

import threading

import numpy as np


class FrameHub:
    """The latest annotated frame, the frame as captured, and the reading, handed from one producer
    to any number of readers."""

    def __init__(self, jpeg_quality: int = 80):
        self.jpeg_quality = jpeg_quality
        self._cond = threading.Condition()
        self._seq = 0  # images published so far
        self._images: dict[bool, np.ndarray | None] = {False: None, True: None}  # annotated, raw
        self._record: dict | None = None
        self._jpegs: dict[bool, tuple[int, bytes]] = {}  # (seq, bytes) of the last encoded of each
        self.closed = False

    def publish(self, image_bgr: np.ndarray | None, record: dict, raw_bgr: np.ndarray | None = None) -> None:
        """Replace the latest reading, and the frame unless it is None (BGR uint8, annotated, and as
        captured if given; kept by reference: don't modify them afterwards)."""
        with self._cond:
            self._record = record
            if image_bgr is not None:
                self._seq += 1
                self._images = {False: image_bgr, True: raw_bgr}
                self._cond.notify_all()

    def latest(self) -> dict | None:
        with self._cond:
            return self._record

    def wait_jpeg(self, after: int, timeout: float = 1.0, raw: bool = False) -> tuple[int, bytes] | None:
        """The first frame newer than `after` (`raw`: as captured, else annotated), JPEG-encoded:
        (seq, bytes); None on timeout or close, or when no such frame was published."""
        with self._cond:
            def ready() -> bool:
                return self.closed or (self._seq > after and self._images[raw] is not None)

            if not self._cond.wait_for(ready, timeout):
                return None
            if self.closed:
                return None
            seq, image, cached = self._seq, self._images[raw], self._jpegs.get(raw)
        if cached is not None and cached[0] == seq:
            return cached
        import cv2

        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            return None
        with self._cond:
            self._jpegs[raw] = (seq, buf.tobytes())
            return self._jpegs[raw]

    def close(self) -> None:
        """Wake every waiting client so it can finish."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
