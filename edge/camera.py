"""`mnist-edge camera`: read digits from a camera, a video, a stream or a folder of images, live.

    mnist-edge camera --source picamera --serve 0.0.0.0:8080    # a Pi camera, watched from a browser
    mnist-edge camera --source 0 --show                          # a USB camera, in a window
    mnist-edge camera --source clip.avi --max-frames 100 > readings.jsonl
    mnist-edge camera --source picamera --monotonic --mqtt mqtt://broker.lan   # a meter, to Home Assistant

Each frame: capture -> edge.digits.to_grey -> the digit locator's boxes (or, with --locator none,
segmentation) -> ONE batched Classifier call for all crops -> one JSON line on stdout:

    {"t": 1767225600.123, "frame": 0, "reading": "2026",
     "digits": [{"digit": 2, "confidence": 0.99, "box": [x, y, w, h]}, ...],
     "ms": {"capture": 3.1, "preprocess": 4.2, "inference": 1.3, "total": 8.6},
     "stable": "2026", "changed": false}

"reading" is the digits left to right ("" when none reach --min-confidence); frames from a folder
also carry "file". "stable" is the last reading most of the last --stable N frames agreed on, digit
by digit (edge.stable; "suspect" says why a candidate failed --monotonic or --max-step), "changed"
marks the frame it changed; --mqtt publishes it (edge.mqtt). Logs go to stderr. A frame that
fails is logged and skipped; a camera that stops is reconnected with backoff (exit 1 if it never
comes back); SIGINT/SIGTERM stop cleanly (exit 0).
With --serve or --show the last frame stays up after a file or folder ends, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from edge import models, signals, web
from edge.backends import MAX_THREADS
from edge.classifier import Classifier
from edge.contract import RUNTIMES
from edge.digits import SegmentConfig
from edge.errors import UserError
from edge.heap import keep_freed_memory
from edge.hub import FrameHub
from edge.locator import Locator
from edge.models import (
    LOCATOR_HELP,
    ROWS_HELP,
    locator_flag,
    resolve_locator,
    resolve_model,
    warn_if_segmenting,
)
from edge.mqtt import PASSWORD_ENV, MqttConfig, Publisher, check_interval, parse_url, start_publisher
from edge.output import silence_stdout, write_line
from edge.reader import MIN_CONFIDENCE, read
from edge.rows import RowReader, open_rows
from edge.sources import SOURCE_HELP, Frame, RetryConfig, Source, SourceLost, frames, open_source
from edge.stable import Stabilizer, StableConfig
from edge.view import annotate, close_windows, open_window, plain, show, window_open

log = logging.getLogger(__name__)


MIN_FPS = 1 / 86400  # --fps below this (other than 0) is a typo: a frame a day is the slowest meter


@dataclass
class CameraConfig:
    source: str = "0"  # 'picamera', a camera index or device, a folder of images, an image/video file, a URL
    model: str | None = None  # .tflite or .onnx; None: the shipped models/model_int8.tflite
    runtime: str | None = None  # one of edge.contract.RUNTIMES; None: the first that imports
    threads: int = 1  # interpreter threads (1 leaves the other cores to the camera and the OS)
    min_confidence: float = MIN_CONFIDENCE  # digits less sure than this are dropped
    locator: str | None = None  # a digit-locator file (edge.locator); None: the shipped one beside the
    #   model or in models/; "none": find digits by segmentation alone
    rows: str | None = None  # a row-reader file (edge.rows); None: the shipped one, as the locator;
    #   "none": each located digit's crop read by the classifier
    max_frames: int | None = None  # stop after this many frames; None: until the source ends
    fps: float = 0.0  # at most this many frames per second; 0: as fast as they come
    show: bool = False  # draw the frames in a window (needs a display and OpenCV with GUI)
    serve: str | None = None  # HOST:PORT for the live page; a bare PORT binds 127.0.0.1
    max_retries: int = RetryConfig.max_retries  # reconnects when a camera stops giving frames; -1: forever
    stable: int = StableConfig.frames  # frames whose per-digit votes make a stable reading (edge.stable)
    monotonic: bool = False  # a counter that only goes up: a smaller stable reading is flagged suspect
    max_step: int | None = None  # a stable reading moving by more than this is flagged suspect
    mqtt: str | None = None  # mqtt[s]://[user[:password]@]HOST[:PORT][/PREFIX]: publish there (edge.mqtt)
    device_id: str | None = None  # this device's name on the broker and in Home Assistant; None: hostname
    mqtt_interval: float | None = None  # republish an unchanged stable reading this often (s); None:
    #   MqttConfig.interval
    discovery: bool = True  # publish Home Assistant discovery configs with --mqtt


def read_frame(frame: Frame, clf: Classifier, min_confidence: float,
               seg: SegmentConfig | None = None, locator: Locator | None = None,
               rows: RowReader | None = None) -> dict:
    """One frame -> its record (without capture time): `edge.reader.read`'s digits, and timings."""
    r = read(frame.image, clf, min_confidence, frame.color_order, seg, locator, rows)
    return {**r.to_dict(), "ms": {"preprocess": r.segment_ms, "inference": r.classify_ms}}


def _check(cfg: CameraConfig) -> None:
    if not 1 <= cfg.threads <= MAX_THREADS:
        raise UserError(f"--threads {cfg.threads}: expected 1 to {MAX_THREADS}")
    if not 0.0 <= cfg.min_confidence <= 1.0:
        raise UserError(f"--min-confidence {cfg.min_confidence}: expected a number from 0 to 1")
    if cfg.max_frames is not None and cfg.max_frames < 1:
        raise UserError(f"--max-frames {cfg.max_frames}: expected 1 or more")
    if not math.isfinite(cfg.fps) or not (cfg.fps == 0 or cfg.fps >= MIN_FPS):  # nan fails both
        raise UserError(f"--fps {cfg.fps:g}: expected 0 (no limit) or at least 1/{round(1 / MIN_FPS)} "
                        "(a frame a day)")
    if cfg.max_retries < -1:
        raise UserError(f"--max-retries {cfg.max_retries}: expected -1 (forever), 0 or more")
    if cfg.mqtt_interval is not None:
        check_interval(cfg.mqtt_interval)
    if cfg.mqtt is not None:
        parse_url(cfg.mqtt)  # an empty --mqtt "" is a mistake, not "no broker"
    else:  # a publishing setting without a broker would be silently ignored
        unused = ([f"--device-id {shlex.quote(cfg.device_id)}"] if cfg.device_id is not None else []) + \
            ([f"--mqtt-interval {cfg.mqtt_interval:g}"] if cfg.mqtt_interval is not None else []) + \
            (["--no-discovery"] if not cfg.discovery else [])
        if unused:
            raise UserError(f"{unused[0]}: only used when publishing; add --mqtt URL")


@dataclass
class _Outputs:
    """Where each frame's record goes: stdout, and with their flags the broker, the page, the window."""

    out: TextIO  # one JSON line per frame
    stabilizer: Stabilizer  # the stable reading each record carries (and the publisher sends)
    show: bool = False  # draw each frame in a window
    publisher: Publisher | None = None  # --mqtt
    hub: FrameHub | None = None  # --serve's live page

    @property
    def views(self) -> bool:
        """Whether anything shows the annotated frame."""
        return self.hub is not None or self.show

    def send(self, record: dict, view: np.ndarray | None, raw: np.ndarray | None = None) -> bool:
        """Hand one record (its view, and the frame as captured) to every output; False once the loop
        should stop."""
        if not _emit(record, self.out):
            return False  # nobody reads the readings any more: done, page or not
        if self.publisher:
            self.publisher.on_record(record, self.stabilizer)  # never blocks: queued while away
        if self.hub:
            self.hub.publish(view, record, raw)
        if self.show:
            return show(view)
        return True


def run(cfg: CameraConfig, source: Source | None = None, stop: threading.Event | None = None,
        retry: RetryConfig | None = None, out=None) -> int:
    """The capture loop. Returns 0 when the frames end or `stop` is set, 1 if the camera is lost;
    a source that ends before one frame could be read is a UserError.

    `source` overrides cfg.source (e.g. a source of your own); the loop closes it when done.
    """
    _check(cfg)
    stop = stop or threading.Event()
    retry = retry or RetryConfig(max_retries=cfg.max_retries)
    address = web.parse_address(cfg.serve) if cfg.serve is not None else None  # '' is a mistake too
    outputs = _Outputs(out or sys.stdout, Stabilizer(StableConfig(cfg.stable, cfg.monotonic, cfg.max_step)),
                       show=cfg.show)
    with ExitStack() as stack:
        if source is not None:
            stack.callback(source.close)
        if cfg.show:
            open_window()
            stack.callback(close_windows)
        model = resolve_model(cfg.model, cfg.runtime)  # cheap checks first, so a mistake is one line
        locator_path = resolve_locator(cfg.locator, model, cfg.runtime)
        if cfg.mqtt:  # a broker that is not there or refuses us: one line, before the camera opens
            interval = MqttConfig.interval if cfg.mqtt_interval is None else cfg.mqtt_interval
            try:
                with signals.cut_short():  # up to 10 s for a broker that does not answer: a stop ends it
                    outputs.publisher = start_publisher(MqttConfig(cfg.mqtt, cfg.device_id, interval,
                                                                   cfg.discovery), model)
            except signals.Cut:
                log.info("stopped before the broker answered")
                return 0
            stack.callback(outputs.publisher.close)
        if source is None:
            source = open_source(cfg.source, stop=stop)  # a stream's open gives up when stop is set
            stack.callback(source.close)
        if address:
            outputs.hub = FrameHub()
            password = os.environ.get(web.PASSWORD_ENV) or None
            server = web.WebServer(*address, outputs.hub, title=source.name, password=password).start()
            stack.callback(server.stop)
            log.info("serving the live page on %s%s", server.url,
                     f" (password: ${web.PASSWORD_ENV})" if password else "")
            if not password and not web.loopback(address[0]):
                log.warning("the live page is open to anyone who can reach %s: set %s to ask for a "
                            "password", server.url, web.PASSWORD_ENV)
        clf = Classifier(model, cfg.runtime, cfg.threads)
        warn_if_segmenting(cfg.locator, locator_path, model, cfg.runtime)
        locator = (Locator(locator_path, cfg.runtime, cfg.threads, flag=locator_flag(cfg.locator))
                   if locator_path else None)
        rows = open_rows(cfg.rows, locator_path, model, cfg.runtime, cfg.threads)
        log.info("reading %s with %s (%s, %d thread%s), digits found by %s%s, min confidence %.2f",
                 source.name, model, clf.runtime, cfg.threads, "" if cfg.threads == 1 else "s",
                 locator_path or "segmentation", f", read a row at a time by {rows.path}" if rows else "",
                 cfg.min_confidence)
        try:
            count, good, seconds = _loop(cfg, frames(source, retry, stop), clf, outputs, stop, locator, rows)
        except SourceLost as e:
            log.error("%s", e)
            return 1
        if good == 0 and not stop.is_set():  # a source that ended without one readable frame
            raise UserError(f"--source {source.name}: no frame in it could be read")
        log.info("%d frame%s in %.2f s (%.1f frames/s)", count, "" if count == 1 else "s", seconds,
                 count / seconds if seconds > 0 else 0.0)
        if outputs.views and not stop.is_set():
            if outputs.publisher:  # no reading will come while the last frame stays up: say so
                outputs.publisher.close()
            _linger(outputs, stop, f"--max-frames {count} reached" if count == cfg.max_frames
                    else "no more frames")
    return 0


def _loop(cfg: CameraConfig, stream: Iterator[Frame], clf: Classifier, outputs: _Outputs,
          stop: threading.Event, locator: Locator | None = None,
          rows: RowReader | None = None) -> tuple[int, int, float]:
    """Read every frame of `stream` until it ends, `stop` is set, --max-frames is reached or an
    output is gone (which sets `stop`). A frame that fails is logged and skipped.
    -> (frames, frames read, seconds)"""
    count, good, t_start = 0, 0, time.perf_counter()
    t_ready = t_start  # when the loop was last ready for a frame
    for frame in stream:
        t_got = time.perf_counter()
        count += 1
        try:
            record = _record(frame, clf, cfg.min_confidence, outputs.stabilizer, t_ready, t_got,
                             locator, rows)
            view = annotate(frame, record) if outputs.views else None
            raw = plain(frame) if outputs.hub else None
        except Exception as e:
            log.warning("frame %d: skipped (%s: %s)", frame.index, e.__class__.__name__, e)
        else:
            good += 1
            if not outputs.send(record, view, raw):
                stop.set()
                break
        if cfg.max_frames and count >= cfg.max_frames:
            break
        if cfg.fps > 0 and stop.wait(max(0.0, t_got + 1.0 / cfg.fps - time.perf_counter())):
            break
        t_ready = time.perf_counter()
    return count, good, time.perf_counter() - t_start


def _record(frame: Frame, clf: Classifier, min_confidence: float, stabilizer: Stabilizer,
            t_ready: float, t_got: float, locator: Locator | None = None,
            rows: RowReader | None = None) -> dict:
    """One frame's JSON record: its reading, timings from when the loop was ready, stable reading."""
    record = {"t": round(frame.t, 3), "frame": frame.index,
              **read_frame(frame, clf, min_confidence, locator=locator, rows=rows)}
    if frame.name is not None:
        record["file"] = frame.name
    ms = record["ms"]
    ms["capture"] = 1e3 * (t_got - t_ready)
    ms["total"] = 1e3 * (time.perf_counter() - t_ready)
    record["ms"] = {k: round(ms[k], 2) for k in ("capture", "preprocess", "inference", "total")}
    record.update(stabilizer.update(record))  # "stable", "changed" (+ "suspect")
    return record


def _linger(outputs: _Outputs, stop: threading.Event, why: str) -> None:
    """After a file or folder ends (or --max-frames), keep the last frame on the page or in the window
    until Ctrl-C."""
    log.info("%s; %s until Ctrl-C", why, "still serving" if outputs.hub else "showing the last")
    while not stop.wait(0.05 if outputs.show else 1.0):
        if outputs.show and not window_open():
            break


def _emit(record: dict, out) -> bool:
    """Print one JSON line; False if the reader went away (e.g. `| head`) or a stop came while it
    was written (a reader that does not read keeps it waiting); OutputError if it fails."""
    line = json.dumps(record)
    try:
        with signals.cut_short():
            if write_line(line, out):
                return True
    except signals.Cut:
        if out is sys.stdout:
            silence_stdout()  # what is left in its buffer would wait for that reader at exit too
        log.info("stopped while writing a reading to stdout (its reader may not be reading)")
        return False
    log.info("stdout closed; stopping")
    return False


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("mnist-edge camera", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:6]))
    d = CameraConfig
    p.add_argument("--source", type=str, default=d.source,
                   help=f"{SOURCE_HELP} (default: {d.source}, the first USB camera; 'picamera' for a Pi "
                        "camera)")
    p.add_argument("--model", type=str, default=d.model,
                   help=models.MODEL_HELP)
    p.add_argument("--runtime", type=str, default=d.runtime,
                   help=f"{', '.join(RUNTIMES)} (default: the first installed)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help=f"interpreter threads (default: {d.threads})")
    p.add_argument("--min-confidence", type=float, default=d.min_confidence,
                   help=f"drop digits less sure than this, 0..1 (default: {d.min_confidence})")
    p.add_argument("--locator", type=str, default=d.locator,
                   help=LOCATOR_HELP)
    p.add_argument("--rows", type=str, default=d.rows, help=ROWS_HELP)
    p.add_argument("--max-frames", type=int, default=d.max_frames,
                   help="stop reading after this many frames (with --serve or --show, the last stays "
                        "up until Ctrl-C, as when a file ends)")
    p.add_argument("--fps", type=float, default=d.fps,
                   help=f"process at most this many frames per second (default: {d.fps:g}, no limit)")
    p.add_argument("--show", action="store_true", help="show the frames in a window")
    p.add_argument("--serve", type=str, default=d.serve, metavar="HOST:PORT",
                   help="serve a live page; a bare PORT binds 127.0.0.1, 0.0.0.0:PORT every interface "
                        f"(${web.PASSWORD_ENV}: a password for it)")
    p.add_argument("--max-retries", type=int, default=d.max_retries,
                   help=f"reconnect attempts when a camera stops giving frames (-1: forever; "
                        f"default {d.max_retries})")
    p.add_argument("--stable", type=int, default=d.stable, metavar="N",
                   help="a reading is stable when most of the last N frames agree digit by digit "
                        f"(default: {d.stable}; 1: every frame)")
    p.add_argument("--monotonic", action="store_true",
                   help="a counter that only goes up: flag a smaller stable reading as suspect")
    p.add_argument("--max-step", type=int, default=d.max_step, metavar="K",
                   help="flag a stable reading that moves by more than K as suspect")
    p.add_argument("--mqtt", type=str, default=d.mqtt, metavar="URL",
                   help="publish stable readings to mqtt[s]://[user[:password]@]HOST[:PORT][/PREFIX] "
                        f"(password also from {PASSWORD_ENV}; default prefix mnist-edge/DEVICE_ID)")
    p.add_argument("--device-id", type=str, default=d.device_id,
                   help="this device's name on the broker and in Home Assistant (default: the hostname)")
    p.add_argument("--mqtt-interval", type=float, default=d.mqtt_interval, metavar="SECONDS",
                   help="republish an unchanged stable reading this often "
                        f"(default: {MqttConfig.interval:g}; 0: only when it changes)")
    p.add_argument("--no-discovery", action="store_true",
                   help="with --mqtt, do not publish Home Assistant discovery configs")
    return p


def config(args: argparse.Namespace) -> CameraConfig:
    return CameraConfig(source=args.source, model=args.model, runtime=args.runtime,
                        threads=args.threads, min_confidence=args.min_confidence, locator=args.locator,
                        rows=args.rows,
                        max_frames=args.max_frames, fps=args.fps, show=args.show, serve=args.serve,
                        max_retries=args.max_retries, stable=args.stable, monotonic=args.monotonic,
                        max_step=args.max_step, mqtt=args.mqtt, device_id=args.device_id,
                        mqtt_interval=args.mqtt_interval, discovery=not args.no_discovery)


def main(args: argparse.Namespace) -> int:
    cfg = config(args)
    keep_freed_memory()  # each frame's big temporaries reuse the last frame's memory (edge.heap)
    stop = threading.Event()
    with signals.stopping(stop):  # Ctrl-C and SIGTERM set it, and cut a long wait short
        return run(cfg, stop=stop)
