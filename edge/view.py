"""What `mnist-edge camera` shows: each frame with its digits boxed and labelled, and the --show window.

    >>> import numpy as np
    >>> from edge.sources import Frame
    >>> from edge.view import annotate
    >>> frame = Frame(np.full((240, 320), 200, np.uint8), "grey", t=0.0, index=0)
    >>> record = {"reading": "7", "digits": [{"digit": 7, "confidence": 0.98, "box": [100, 60, 40, 80]}]}
    >>> annotate(frame, record).shape                      # BGR, the size of the frame (or its display)
    (240, 320, 3)

The live page (edge.web) shows the same annotated frames.
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from edge.digits import to_bgr
from edge.errors import UserError
from edge.sources import Frame

WINDOW = "mnist-edge"


def plain(frame: Frame) -> np.ndarray:
    """The frame to show (its display view when it has one) as a new BGR image, nothing drawn on it:
    what another device reads from `--serve`'s /raw.mjpg."""
    if frame.display is not None:
        return to_bgr(frame.display, frame.display_order or "bgr")
    return to_bgr(frame.image, frame.color_order)


def annotate(frame: Frame, record: dict) -> np.ndarray:
    """The frame to show (`plain`), digits boxed and labelled."""
    out = plain(frame)
    sy, sx = out.shape[0] / frame.image.shape[0], out.shape[1] / frame.image.shape[1]
    thick = max(1, round(out.shape[0] / 240))
    for d in record["digits"]:
        x, y, w, h = d["box"]
        p0, p1 = (round(x * sx), round(y * sy)), (round((x + w) * sx), round((y + h) * sy))
        cv2.rectangle(out, p0, p1, (0, 200, 0), thick)
        cv2.putText(out, f"{d['digit']} {d['confidence']:.2f}", (p0[0], max(12, p0[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 200, 0), thick, cv2.LINE_AA)
    label = record["reading"] or "-"
    cv2.putText(out, label, (8, 16 * thick + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * thick, (0, 0, 255),
                2 * thick, cv2.LINE_AA)
    return out


def open_window() -> None:
    """Fail with one line, before anything is opened, when --show cannot work here."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--show: no display here (DISPLAY is not set); on a headless device use "
                        "--serve 0.0.0.0:8080 and open that address in a browser")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        raise UserError("--show: this OpenCV has no window support (opencv-python-headless); "
                        "pip install opencv-python, or use --serve HOST:PORT") from None


def window_open() -> bool:
    """Pump the window's events; False once the user pressed q/Esc or closed it."""
    key = cv2.waitKey(1) & 0xFF
    return key not in (ord("q"), 27) and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1


def show(image: np.ndarray) -> bool:
    """Draw `image` in the window; False once the user pressed q/Esc or closed it."""
    cv2.imshow(WINDOW, image)
    return window_open()


def close_windows() -> None:
    cv2.destroyAllWindows()
