"""The frame benchmark: how well and how fast whole 640x480 frames are read, as `camera` reads them.

    python -m benchmarks.frames --scene desk          # notebook paper, pens and pencils, a desk lamp
    python -m benchmarks.frames --scene clean         # dark digits on plain, evenly lit paper
    python -m benchmarks.frames --model artifacts/model_int8.onnx --frames 500
    python -m benchmarks.frames --size 320x240        # as a camera delivering 320x240 frames
    python -m benchmarks.frames --size 1280x720       # a 16:9 camera: more desk beside the page
    python -m benchmarks.frames --locator none        # digits found by segmentation alone
    python -m benchmarks.frames --rows none           # each located digit's crop read by the classifier

Scenes are made first, untimed, from MNIST *test* digits (benchmarks/desk.py,
benchmarks/synthetic.py); each is then read by `edge.reader.read`, exactly what `mnist-edge camera`
and `predict` run (the shipped locator finds the digits, the shipped row reader reads them a row at
a time; `--rows none`: each one's crop by the classifier; `--locator none`: segmentation), with one
interpreter thread and, by default, one OpenCV thread. Reports the share of frames read exactly,
digit accuracy (1 - edit distance / true digits), false readings on blank scenes, where the digit
errors went (dropped, added, misread: finding or reading), frames per second, and on desk scenes the
same broken down by paper and by ink, then false readings on 300 more blank desk pages (`--blank N`,
after either scene; by default after desk scenes only: the scenes' one in ten is too few to tell 2 %
from 4 %). Needs MNIST (--data or MNIST_EDGE_DATA).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from edge import models
from edge.classifier import Classifier
from edge.contract import RUNTIMES
from edge.device import int8_line, read_cpu
from edge.errors import UserError, check_seed
from edge.heap import keep_freed_memory
from edge.locator import Box, Locator
from edge.models import LOCATOR_HELP, locator_flag, resolve_locator, resolve_model, warn_if_segmenting
from edge.reader import read
from edge.rows import RowReader, open_rows

log = logging.getLogger(__name__)
SCENES = ("desk", "clean")
BLANK_STREAM = 0xB1A4C  # the blank pages' seeds are (--seed, this): never the desk scenes' own
BLANK_PAGES = 300  # --blank's default after desk scenes; after clean ones, none unless asked


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    truth: str  # the digits left to right; "" on a blank scene
    paper: str = "plain"  # the kind of paper (desk scenes)
    ink: str = "marker"  # the kind of pen ("" on a blank scene)
    boxes: list = field(default_factory=list)  # the digits' true boxes x, y, w, h, left to right


def make_frames(scene: str, n: int, seed: int, data: str | None,
                size: tuple[int, int] = (640, 480)) -> list[Frame]:
    """n frames of MNIST *test* digits, drawn at `drawn_size(size)` and resized to `size` (width,
    height): desk scenes, or the clean set of 1-4 digits on plain paper."""
    from train.data import load_mnist

    mnist = load_mnist(data)
    w, h = drawn_size(size)
    if scene == "desk":
        from benchmarks.desk import scene_set

        return resized([Frame(s.image, s.truth, s.paper, s.ink, s.boxes)
                        for s in scene_set(mnist.x_test, mnist.y_test, n, seed, size=(h, w))], size)
    from benchmarks.synthetic import make_frame

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        idx = rng.integers(0, len(mnist.x_test), int(rng.integers(1, 5)))
        image, boxes = make_frame(list(mnist.x_test[idx]), rng, size=(h, w))
        frames.append(Frame(image, "".join(str(int(d)) for d in mnist.y_test[idx]), boxes=boxes))
    return resized(frames, size)


def drawn_size(size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) scenes are drawn at for frames of `size`: its aspect, 480 px on the shorter
    side, as the 640x480 scenes are (digits 35-150 px tall), so a 16:9 or portrait camera sees
    more desk around a page written alike, not a page stretched."""
    w, h = size
    return (round(480 * w / h), 480) if w >= h else (480, round(480 * h / w))


def resized(frames: list[Frame], size: tuple[int, int]) -> list[Frame]:
    """The frames as a camera delivering (width, height) would: each scene resized (INTER_AREA
    smaller, INTER_LINEAR larger), its true boxes with it."""
    import cv2

    out = []
    for f in frames:
        h, w = f.image.shape[:2]
        if (w, h) == size:
            out.append(f)
            continue
        sx, sy = size[0] / w, size[1] / h
        image = cv2.resize(f.image, size, interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
        boxes = [(round(x * sx), round(y * sy), max(1, round(bw * sx)), max(1, round(bh * sy)))
                 for x, y, bw, bh in f.boxes]
        out.append(Frame(image, f.truth, f.paper, f.ink, boxes))
    return out


def frame_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240): the --size flag."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height from 16 to 4096 px")
    return w, h


def blank_pages(n: int, seed: int, size: tuple[int, int] = (640, 480)) -> list[Frame]:
    """n blank desk pages (paper, rules, light and camera; no digit) of `size` (width, height),
    each kind of paper in turn, from a seed stream of their own: the desk set's one in ten is too
    few to tell 2 % from 4 %."""
    from benchmarks.desk import PAPERS, make_scene

    rng = np.random.default_rng((seed, BLANK_STREAM))
    w, h = drawn_size(size)
    pages = (make_scene([], [], rng, paper=PAPERS[i % len(PAPERS)], size=(h, w)) for i in range(n))
    return resized([Frame(s.image, "", s.paper, "") for s in pages], size)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: digits missed, added or misread."""
    return len(errors(a, b))


def errors(read: str, truth: str) -> list[tuple[str, str]]:
    """What a reading got wrong, as (true digit, digit read) pairs along one cheapest alignment of
    the two (Levenshtein): ("7", "") a digit dropped, ("", "7") one added, ("7", "1") one misread.
    Of equally cheap alignments, the one with the most misreads (fewest drops and adds) is taken."""
    n, m = len(read), len(truth)
    # cost[i][j]: (edits, -misreads) of read[:i] against truth[:j]; tuples compare edits first
    cost = [[(i + j, 0) if not (i and j) else None for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            e, neg = cost[i - 1][j - 1]
            diag = (e + 1, neg - 1) if read[i - 1] != truth[j - 1] else (e, neg)
            up, left = cost[i - 1][j], cost[i][j - 1]
            cost[i][j] = min(diag, (up[0] + 1, up[1]), (left[0] + 1, left[1]))
    out = []
    i, j = n, m
    while i or j:
        if i and j:
            e, neg = cost[i - 1][j - 1]
            miss = read[i - 1] != truth[j - 1]
            if cost[i][j] == ((e + 1, neg - 1) if miss else (e, neg)):
                if miss:
                    out.append((truth[j - 1], read[i - 1]))
                i, j = i - 1, j - 1
                continue
        if j and cost[i][j] == (cost[i][j - 1][0] + 1, cost[i][j - 1][1]):
            out.append((truth[j - 1], ""))
            j -= 1
        else:
            out.append(("", read[i - 1]))
            i -= 1
    return out[::-1]


def error_line(frames: list[Frame], readings: list[str]) -> str:
    """Where the digit errors of frames with digits went: dropped (the most often dropped digits),
    added, misread (the commonest confusions), so a run says whether finding or reading lost them."""
    errs = Counter(e for f, r in zip(frames, readings, strict=True) if f.truth for e in errors(r, f.truth))
    dropped = Counter({f"{n} {t}s": n for (t, r), n in errs.items() if not r})
    added = sum(n for (t, _), n in errs.items() if not t)
    misread = Counter({f"{t} as {r} x{n}": n for (t, r), n in errs.items() if t and r})

    def top(c: Counter) -> str:
        return f" (most: {', '.join(k for k, _ in c.most_common(3))})" if c else ""

    return (f"digit errors: {sum(dropped.values())} dropped{top(dropped)}, {added} added, "
            f"{sum(misread.values())} misread{top(misread)}")


def score(frames: list[Frame], readings: list[str]) -> dict:
    """exact (share of frames read exactly), digit_accuracy, blank_false (share of blank frames
    with any reading), and the counts behind them."""
    pairs = list(zip(frames, readings, strict=True))
    digits = sum(len(f.truth) for f in frames)
    errors = sum(edit_distance(r, f.truth) for f, r in pairs if f.truth)
    blanks = [r for f, r in pairs if not f.truth]
    return {"frames": len(frames), "exact": sum(r == f.truth for f, r in pairs) / max(1, len(pairs)),
            "digits": digits, "digit_accuracy": 1 - errors / digits if digits else float("nan"),
            "blank": len(blanks),
            "blank_false": sum(bool(r) for r in blanks) / len(blanks) if blanks else float("nan")}


class TrueBoxes:
    """A stand-in locator that knows where the digits are: measures the crops alone."""

    shown = "no locator: the scenes' own boxes (--locator truth, to measure the crops alone)"

    def __init__(self):
        self.frame: Frame | None = None

    def locate(self, grey) -> list[Box]:
        return [Box(*b, 1.0) for b in self.frame.boxes] if self.frame else []


def measure(frames: list[Frame], clf: Classifier, locator: Locator | TrueBoxes | None = None,
            warmup: int = 5, rows: RowReader | None = None) -> tuple[dict, list[str], Counter]:
    """Per-stage milliseconds for each frame (after `warmup` untimed frames), each reading, and how
    many frames each way of looking for digits read (`edge.reader.FOUND_BY`)."""
    for f in frames[:warmup]:
        if isinstance(locator, TrueBoxes):
            locator.frame = f
        read(f.image, clf, locator=locator, rows=rows)
    ms = {"segment": [], "classify": [], "total": []}
    readings, found = [], Counter()
    for f in frames:
        if isinstance(locator, TrueBoxes):
            locator.frame = f
        t0 = time.perf_counter()
        r = read(f.image, clf, locator=locator, rows=rows)
        ms["total"].append(1e3 * (time.perf_counter() - t0))
        ms["segment"].append(r.segment_ms)
        ms["classify"].append(r.classify_ms)
        readings.append(r.text)
        found[r.found_by] += 1
    return {s: np.array(v) for s, v in ms.items()}, readings, found


def _row(name: str, s: dict) -> str:
    """One line of the report; '-' where a kind had no frames (a short run) or no digits."""
    def pct(share: float, of: int) -> str:
        return f"{100 * share:>9.1f} %" if of else f"{'-':>11}"

    blank = f"{100 * s['blank_false']:5.1f} % of {s['blank']}" if s["blank"] else "-"
    return (f"{name:<14}{s['frames']:>7}{pct(s['exact'], s['frames'])}"
            f"{pct(s['digit_accuracy'], s['digits'])}   {blank}")


def report(frames: list[Frame], readings: list[str], ms: dict, scene: str) -> str:
    lines = [f"{'':<14}{'frames':>7}{'exact':>11}{'digits':>11}   blank scenes read as digits",
             _row("all", score(frames, readings))]
    if scene == "desk":
        from benchmarks.desk import INKS, PAPERS

        for key, kinds in (("paper", PAPERS), ("ink", INKS)):
            for kind in kinds:
                sel = [i for i, f in enumerate(frames) if getattr(f, key) == kind]
                lines.append(_row(f"{key} {kind}", score([frames[i] for i in sel],
                                                          [readings[i] for i in sel])))
    lines.append(error_line(frames, readings))
    lines.append(f"{'stage':<12}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}")
    for stage, v in ms.items():
        lines.append(f"{stage:<12}{np.percentile(v, 50):>9.2f}{np.percentile(v, 90):>9.2f}{v.mean():>9.2f}")
    total = ms["total"]
    lines.append(f"frames/s: {1e3 / total.mean():.1f} (from the mean), {1e3 / np.median(total):.1f} "
                 "(from the median)")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python -m benchmarks.frames", description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=str, default="desk", choices=SCENES,
                   help="desk: paper, pens, lamp and camera as on a desk; clean: plain paper (default: desk)")
    p.add_argument("--model", type=str, default=None,
                   help=models.MODEL_HELP)
    p.add_argument("--runtime", type=str, default=None,
                   help=f"{', '.join(RUNTIMES)} (default: the first installed)")
    p.add_argument("--locator", type=str, default=None,
                   help=f"{LOCATOR_HELP}; 'truth': the scenes' own boxes, to measure the crops alone")
    p.add_argument("--rows", type=str, default=None, help=models.ROWS_HELP)
    p.add_argument("--frames", type=int, default=300, help="frames to read (default: 300)")
    p.add_argument("--size", type=frame_size, default=(640, 480), metavar="WxH",
                   help="frame size a camera delivers: scenes are drawn at its aspect, 480 px on the "
                        "shorter side, and resized to it (e.g. 320x240, 1280x720; default: 640x480)")
    p.add_argument("--cv-threads", type=int, default=1,
                   help="OpenCV threads (default: 1; 0 lets OpenCV pick, as mnist-edge camera does)")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave the C library's malloc as it is (camera and predict, like this benchmark "
                        "by default, keep freed memory for the next frame: edge.heap)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated scenes")
    p.add_argument("--data", type=str, default=None, help="MNIST (default: $MNIST_EDGE_DATA, ...)")
    p.add_argument("--blank", type=int, default=None,
                   help="blank desk pages read after the scenes, untimed, to count false readings "
                        f"(default: {BLANK_PAGES} after desk scenes, none after clean ones; 0: none)")
    p.add_argument("--show-misses", type=int, default=0, metavar="N",
                   help="list the first N frames read wrong, with what was read")
    return p


def main(args: argparse.Namespace) -> int:
    import cv2

    if args.frames < 1:
        raise UserError(f"--frames {args.frames}: expected 1 or more")
    if args.blank is not None and args.blank < 0:
        raise UserError(f"--blank {args.blank}: expected 0 or more")
    if args.cv_threads < 0:
        raise UserError(f"--cv-threads {args.cv_threads}: expected 0 (OpenCV's choice) or more")
    if args.show_misses < 0:
        raise UserError(f"--show-misses {args.show_misses}: expected 0 or more")
    check_seed(args.seed)
    if args.cv_threads > 0:
        cv2.setNumThreads(args.cv_threads)
    heap = "C library's default" if args.default_malloc else (
        "freed memory kept" if keep_freed_memory() else "C library's default (not glibc's, or preloaded)")
    model = resolve_model(args.model, args.runtime)
    located = None if args.locator == "truth" else resolve_locator(args.locator, model, args.runtime)
    clf = Classifier(model, args.runtime, threads=1)
    warn_if_segmenting(args.locator, located, model, args.runtime)  # (never for 'truth')
    rows = open_rows(args.rows, located, model, args.runtime)  # as camera and predict take it
    frames = make_frames(args.scene, args.frames, args.seed, args.data, args.size)
    locator = (TrueBoxes() if args.locator == "truth"
               else Locator(located, args.runtime, flag=locator_flag(args.locator)) if located else None)
    ms, readings, found = measure(frames, clf, locator, rows=rows)
    cv_threads = args.cv_threads if args.cv_threads > 0 else f"OpenCV's choice ({cv2.getNumThreads()})"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    drawn = drawn_size(args.size)
    size = "x".join(map(str, args.size)) + ("" if drawn == args.size else
                                             f" (drawn at {drawn[0]}x{drawn[1]}, resized)")
    print(f"{args.frames} {args.scene} scenes, {size}, MNIST test digits, seed {args.seed}")
    truth = isinstance(locator, TrueBoxes)
    finder = locator.shown if truth else f"locator {locator.path if locator else 'none (segmentation)'}"
    finder += f", rows read by {rows.path}" if rows else ""
    print(f"model {model} in {clf.runtime}, {finder}, 1 interpreter thread, OpenCV threads: {cv_threads}, "
          f"malloc: {heap}")
    cpu = read_cpu()
    print(f"{cpu.core or platform.processor() or platform.machine()} ({platform.machine()}; int8: "
          f"{int8_line(cpu)}), {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {load:.1f} (other work slows every stage)")
    print(report(frames, readings, ms, args.scene))
    print("digits looked for by: " + ", ".join(f"{how.replace('locator', 'true boxes') if truth else how} {n}"
                                               for how, n in found.most_common()))
    blank = args.blank if args.blank is not None else BLANK_PAGES if args.scene == "desk" else 0
    if blank:  # desk pages whatever the scene: blank_pages draws them alone
        pages = blank_pages(blank, args.seed, args.size)
        _, said, _ = measure(pages, clf, locator, warmup=0, rows=rows)
        false = [f"{f.paper} {r!r}" for f, r in zip(pages, said, strict=True) if r]
        print(f"blank pages: {len(false)} of {len(pages)} read as digits "
              f"({100 * len(false) / len(pages):.1f} %)" + (": " + ", ".join(false[:8]) if false else ""))
    misses = [(i, f, r) for i, (f, r) in enumerate(zip(frames, readings, strict=True)) if r != f.truth]
    for i, f, r in misses[:args.show_misses]:
        print(f"  frame {i}: {f.paper}/{f.ink or '-'}: truth {f.truth or '-'!s:<7} read {r or '-'}")
    return 0


if __name__ == "__main__":
    import sys

    from edge.cli import script

    sys.exit(script("benchmarks.frames"))
