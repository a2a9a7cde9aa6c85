"""`mnist-edge predict`: the digits in image files, with their confidences.

    mnist-edge predict photo_of_a_page.jpg mnist_digit.png
    mnist-edge predict --json scans/*.png > readings.jsonl

A 28x28 image is taken as one MNIST-style digit (white on black; dark-on-light is inverted); any
other image (a photo of digits on paper, a scan) is read by `edge.reader.read`, exactly as
`mnist-edge camera` reads a frame, left to right: the shipped digit locator finds the digits
(`--locator none`: segmentation alone). One line per image:

    photo.jpg: 2026  (2 0.99, 0 0.97, 2 0.99, 6 0.93)

or with --json {"file", "reading", "digits": [{"digit", "confidence", "box": [x, y, w, h]}]}.
A name that is no file (missing, a folder, a video) is named in one line, exit 2, before any is
read; a file that is empty, no image, too big or cannot be decoded is skipped (with --json, a
{"file", "error"} line in its place), the others are read, and the error line at the end names it,
exit 2 (at once, before the model loads, when no file is an image).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path

import numpy as np

from edge import models
from edge.classifier import Classifier
from edge.contract import RUNTIMES
from edge.errors import UserError
from edge.heap import keep_freed_memory
from edge.images import ImageError, probe, read_image, shown
from edge.locator import Locator
from edge.models import LOCATOR_HELP, locator_flag, resolve_locator, resolve_model, warn_if_segmenting
from edge.output import write_line
from edge.reader import MIN_CONFIDENCE, read
from edge.rows import RowReader, open_rows

log = logging.getLogger(__name__)
MAX_NAMED = 3  # of the images that could not be decoded, the error line names this many
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpg", ".mjpeg")  # predict's error
#   for one of these, or for a folder, points at camera, which reads them


def predict_image(image: np.ndarray, clf: Classifier, min_confidence: float = MIN_CONFIDENCE,
                  color_order: str = "bgr", locator: Locator | None = None,
                  rows: RowReader | None = None) -> dict:
    """{"reading", "digits": [{"digit", "confidence", "box"}]} for one image: `edge.reader.read`."""
    return read(image, clf, min_confidence, color_order, locator=locator, rows=rows).to_dict()


def _line(name: str, result: dict) -> str:
    if not result["digits"]:
        return f"{name}: no digits"
    each = ", ".join(f"{d['digit']} {d['confidence']:.2f}" for d in result["digits"])
    return f"{name}: {result['reading']}  ({each})"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("mnist-edge predict", description=__doc__.splitlines()[0])
    p.add_argument("images", type=str, nargs="+", metavar="IMAGE", help="image files to read")
    p.add_argument("--model", type=str, default=None,
                   help=models.MODEL_HELP)
    p.add_argument("--runtime", type=str, default=None,
                   help=f"{', '.join(RUNTIMES)} (default: the first installed)")
    p.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE,
                   help=f"drop digits less sure than this, 0..1 (default: {MIN_CONFIDENCE}, as camera; "
                        "0 reports every piece found)")
    p.add_argument("--locator", type=str, default=None,
                   help=LOCATOR_HELP)
    p.add_argument("--rows", type=str, default=None, help=models.ROWS_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per image instead of text")
    return p


def main(args: argparse.Namespace) -> int:
    if not 0.0 <= args.min_confidence <= 1.0:
        raise UserError(f"--min-confidence {args.min_confidence}: expected a number from 0 to 1")
    early = {}  # every name checked before the model loads: one that is no file (a typo, a folder, a
    #   video) stops here; a file that is no image (position -> why) is named at the end, after the others
    for i, path in enumerate(args.images):
        try:
            probe(path)
        except ImageError as e:
            p = Path(path)
            if p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
                raise ImageError(f"{e}; for a video or a folder of images: mnist-edge camera --source "
                                 f"{shlex.quote(shown(path))}") from None
            if not p.is_file():
                raise
            early[i] = str(e)
    if len(early) == len(args.images):  # nothing to read: said now, not after loading the models
        raise _unread(list(early.values()), len(args.images))
    model = resolve_model(args.model, args.runtime)
    locator_path = resolve_locator(args.locator, model, args.runtime)
    clf = Classifier(model, args.runtime, threads=1)
    keep_freed_memory()  # as camera: each image's big temporaries reuse memory (edge.heap)
    warn_if_segmenting(args.locator, locator_path, model, args.runtime)
    locator = Locator(locator_path, args.runtime, flag=locator_flag(args.locator)) if locator_path else None
    rows = open_rows(args.rows, locator_path, model, args.runtime)
    unread = []  # files that could not be read: named at the end, after the others are read
    for i, path in enumerate(args.images):
        name = shown(path)
        try:
            if i in early:  # its header's verdict (empty, not an image, too big), found above
                raise ImageError(early[i])
            result = predict_image(read_image(path), clf, args.min_confidence, locator=locator, rows=rows)
        except UserError as e:
            unread.append(str(e))
            if args.json and not write_line(json.dumps({"file": name, "error": str(e)})):
                break
            continue
        if not write_line(json.dumps({"file": name, **result}) if args.json else _line(name, result)):
            break  # the reader went away (e.g. `| head -1`): done
    if unread:
        raise _unread(unread, len(args.images))
    return 0


def _unread(unread: list[str], total: int) -> UserError:
    """The one error line for the files that could not be read (each its own reason)."""
    if len(unread) == 1:
        return UserError(unread[0])
    more = len(unread) - MAX_NAMED
    return UserError(f"{len(unread)} of {total} images could not be read: "
                     + "; ".join(unread[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else ""))
