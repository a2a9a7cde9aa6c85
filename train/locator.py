"""`mnist-edge locator`: train the digit locator on desk scenes of training digits, export it int8.

    mnist-edge locator --data ../shared/data/mnist.npz --out artifacts     # ~50 min on 2 cores
    mnist-edge locator --quick --out /tmp/run                               # smoke run
    mnist-edge locator --init models/locator_int8.tflite --lr 0.00025 --epochs 6 --out run  # fine-tune
    mnist-edge locator --init models/locator_int8.tflite --epochs 0 --scenes 1000 --out run  # re-export

Scenes come from benchmarks/desk.py with MNIST *training* digits only (the frame benchmark draws
*test* digits), each shrunk to the network's input and labelled with its digits' boxes (the
targets: edge.locator.encode). The network (train/locator_model.py) costs about 52 M MACs per
frame, every op XNNPACK-delegated in int8. Writes locator_int8.tflite, locator_fp32.tflite, locator_int8.onnx,
locator.keras and, last, locator.json (settings, data, versions, each file's recall and precision on
held-out scenes, and each file's size and SHA-256, which `mnist-edge doctor` checks).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.synthetic import HEIGHT_FRAC
from edge import locator as L
from edge.contract import LOCATOR_REPORT, file_entry, locator_file
from edge.errors import UserError, check_rate, check_seed, missing
from edge.provenance import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    check_out_dir,
    environment,
    init_record,
)
from edge.signals import raise_if_received
from train.data import load_mnist
from train.locator_model import build, from_tflite, loss, widen, width_of
from train.model import check_archive
from train.tf_logs import to_log_file

log = logging.getLogger(__name__)


@dataclass
class LocatorConfig:
    scenes: int = 8000        # scenes of training digits to learn from
    clean_share: float = 0.25  # share of them drawn as clean frames (benchmarks/synthetic.py: plain
    #                            paper); the rest desk scenes
    clean_height: float = HEIGHT_FRAC[1]  # clean frames' tallest digits, share of the frame's height
    #                             (default: the frame benchmark's; more: a camera held close); desk
    #                             scenes keep theirs (35-150 px)
    val_scenes: int = 400     # more, from other training digits and seeds, to measure on
    epochs: int | None = None  # passes over the scenes; None: 24 (--quick: 1)
    batch_size: int = 32      # scenes per optimiser step
    lr: float = 2e-3          # peak learning rate (Adam, cosine decay)
    width: int | None = None  # channels of the grid-resolution layers; None: the --init's, else
    #                            `build`'s 32; wider than the --init's widens it (`widen`)
    seed: int = 0             # scenes, split and weights
    init: str | None = None   # a locator.keras, or a locator .tflite (its weights: `from_tflite`), to
    #                            start from (fine-tuning) instead of fresh weights
    workers: int = 2          # processes drawing scenes
    quick: bool = False       # smoke run: 120 scenes, 1 epoch
    data: str | None = None   # MNIST .npz or IDX folder
    out: str = "artifacts"    # folder for locator_{int8,fp32}.tflite and locator.json


    def resolved_epochs(self) -> int:
        """--epochs when given (--quick too), else 1 for --quick, else 24."""
        return self.epochs if self.epochs is not None else (1 if self.quick else 24)


def _chunk(args):
    """Scenes of one seed -> (shrunk grey inputs, targets); run in a worker process."""
    import cv2

    from benchmarks.desk import scene_set
    from benchmarks.synthetic import make_frame
    from edge.digits import to_grey

    images, labels, n, seed, clean_share, clean_height = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed + 7)
    n_clean = int(rng.binomial(n, clean_share))
    scenes = [(s.image, s.boxes) for s in scene_set(images, labels, n - n_clean, seed)]
    for _ in range(n_clean):
        digits = list(images[rng.integers(0, len(images), int(rng.integers(1, 5)))])
        scenes.append(make_frame(digits, rng, height_frac=(HEIGHT_FRAC[0], clean_height)))
    xs, ts = [], []
    for image, boxes in scenes:
        grey = to_grey(image, "bgr")
        xs.append(L.shrink(grey))
        ts.append(L.encode(boxes, grey.shape))
    return np.stack(xs), np.stack(ts)


def make_scenes(images, labels, n: int, seed: int, workers: int, clean_share: float = 0.0,
                clean_height: float = HEIGHT_FRAC[1], chunk: int = 100):
    """n scenes -> (uint8 network inputs (n, *INPUT_HW), float32 targets (n, rows, cols, 6));
    deterministic."""
    jobs = [(images, labels, min(chunk, n - i), seed * 1_000_003 + i, clean_share,
             clean_height)
            for i in range(0, n, chunk)]
    t0, xs, ts = time.perf_counter(), [], []
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.imap(_chunk, jobs)
            for k, (x, t) in enumerate(parts):
                xs.append(x), ts.append(t)
                log.info("scenes %d/%d (%.0f s)", min(n, (k + 1) * chunk), n, time.perf_counter() - t0)
    else:
        for k, job in enumerate(jobs):
            x, t = _chunk(job)
            xs.append(x), ts.append(t)
            log.info("scenes %d/%d (%.0f s)", min(n, (k + 1) * chunk), n, time.perf_counter() - t0)
    return np.concatenate(xs), np.concatenate(ts)


def match(boxes: list[L.Box], truth: list[tuple], iou: float = 0.3) -> tuple[int, int, int]:
    """(true positives, false positives, missed digits) of located boxes against true ones."""
    used, tp = set(), 0
    for b in boxes:
        best, bi = iou, None
        for k, (x, y, w, h) in enumerate(truth):
            ix = max(0.0, min(b.x + b.w, x + w) - max(b.x, x))
            iy = max(0.0, min(b.y + b.h, y + h) - max(b.y, y))
            u = b.w * b.h + w * h - ix * iy
            if k not in used and u > 0 and ix * iy / u >= best:
                best, bi = ix * iy / u, k
        if bi is not None:
            used.add(bi)
            tp += 1
    return tp, len(boxes) - tp, len(truth) - tp


def train(cfg: LocatorConfig) -> dict:
    check_out_dir(cfg.out)
    start = None
    if cfg.init and not cfg.init.endswith(".tflite"):
        check_archive(cfg.init, f"--init {cfg.init}")  # before locator.log is made
    if cfg.init:  # a mistake is one line, before any scene is drawn; TensorFlow's banners (oneDNN's on
        with to_log_file(Path(cfg.out) / "locator.log"):  # Intel CPUs) go to the log, as in training
            start = _load_init(cfg.init)
            if cfg.width and cfg.width != width_of(start):
                start = widen(start, cfg.width, cfg.seed)
    init = init_record(cfg.init, LOCATOR_REPORT)  # before a fine-tune in place replaces its files
    data = load_mnist(cfg.data)
    n, n_val = (120, 30) if cfg.quick else (cfg.scenes, cfg.val_scenes)
    epochs = cfg.resolved_epochs()
    if not epochs:  # re-exported untrained: scenes only to calibrate on (export_all takes 300)
        n = min(n, 300)
    half = len(data.x_train) * 9 // 10  # scenes to learn from and to measure on use other digits
    x, t = make_scenes(data.x_train[:half], data.y_train[:half], n, cfg.seed, cfg.workers,
                       cfg.clean_share, cfg.clean_height)
    xv, tv = make_scenes(data.x_train[half:], data.y_train[half:], n_val, cfg.seed + 1, cfg.workers,
                         cfg.clean_share, cfg.clean_height)

    out = Path(cfg.out)
    (out / LOCATOR_REPORT).unlink(missing_ok=True)  # a stale report must not vouch for new files
    with to_log_file(out / "locator.log"):  # Keras's epoch lines (stdout) stay on screen
        import keras

        keras.utils.set_random_seed(cfg.seed)
        model = start or (build(cfg.width) if cfg.width else build())
        t0 = time.perf_counter()
        if epochs:  # 0 (with --init): the init's network re-exported as today's files, untrained
            sched = keras.optimizers.schedules.CosineDecay(cfg.lr, epochs * -(-n // cfg.batch_size))
            model.compile(keras.optimizers.Adam(sched), loss=loss)
            model.fit(x[..., None].astype(np.float32) / 255, t, batch_size=cfg.batch_size, epochs=epochs,
                      validation_data=(xv[..., None].astype(np.float32) / 255, tv), verbose=2)
        seconds = time.perf_counter() - t0
        with atomic_path(out / "locator.keras", suffix=".keras") as tmp:  # never a half-saved file
            model.save(tmp)
    with to_log_file(out / "locator_export.log", stdout=True):
        files = export_all(model, x[:300])
    report = {"config": {**asdict(cfg), "epochs": epochs, "width": width_of(model)},
              "train_seconds": round(seconds, 1), "params": int(model.count_params()), "init": init,
              "data": {**data.identity(), "scenes": n, "val_scenes": n_val,
                       "digits": "train split only: first 90 % for learning, last 10 % for val"},
              "environment": environment("tensorflow-cpu", "keras", "numpy", "opencv-python-headless")}
    for name, blob in files.items():
        atomic_write_bytes(out / name, blob)
        loc = L.Locator(out / name)
        tp = fp = fn = 0
        for xi, ti in zip(xv, tv, strict=True):
            truth = _boxes(ti, (480, 640))
            a, b, c = match(L.decode(loc.run(xi), (480, 640), loc.min_score), truth)
            tp, fp, fn = tp + a, fp + b, fn + c
        report[name] = {"recall": round(tp / max(1, tp + fn), 4), "precision": round(tp / max(1, tp + fp), 4)}
        log.info("%s: recall %.3f precision %.3f on %d held-out scenes", name,
                 report[name]["recall"], report[name]["precision"], n_val)
    report["files"] = {name: file_entry(out / name) for name in (*files, "locator.keras")}  # doctor checks
    atomic_write_json(out / LOCATOR_REPORT, report)  # written last, as export's manifest
    return report


def _load_init(path: str):
    """--init's locator.keras, checked against today's network input (an older locator, e.g. one
    made for a 160x120 input, cannot be fine-tuned on today's scenes)."""
    from train.model import load

    if path.endswith(".tflite"):
        return from_tflite(path)
    model = load(path, f"--init {path}")
    want = (None, *L.INPUT_HW, 1)
    if tuple(model.input_shape) != want or tuple(model.output_shape[1:]) != (*L.GRID, len(L.CHANNELS)):
        raise UserError(f"--init {path}: a locator for input {tuple(model.input_shape[1:])} and output "
                        f"{tuple(model.output_shape[1:])}; expected input {want[1:]} and output "
                        f"{(*L.GRID, len(L.CHANNELS))} (retrain without --init)")
    first = next((w for w in model.get_weights() if w.ndim == 4), None)
    if first is not None and first.shape[:3] == (3, 3, 1):  # its first conv reads the pixels, strided
        raise UserError(f"--init {path}: a locator made before the 2x2-patch stem; give its "
                        "locator_int8.tflite or locator_fp32.tflite instead (read into today's network)")
    return model


def export_all(model, calib_inputs: np.ndarray, name=locator_file) -> dict[str, bytes]:
    """The locator's files (or the row reader's: `name` gives a file's name from its precision and
    format): int8 and fp32 TFLite, int8 ONNX (QDQ), all calibrated on the same uint8 network inputs
    through the classifier's exporters."""
    import keras

    from export import onnx as onnx_exporter
    from export import tflite
    from export.calibration import Calibration
    from train.model import custom_objects

    calib = Calibration(calib_inputs[..., None].astype(np.float32) / 255,
                        np.arange(len(calib_inputs)), 0)
    config = model.get_config()  # the same network for one frame at a time: static shapes
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [1, *layer["config"]["batch_shape"][1:]]
    model_1 = keras.Model.from_config(config, custom_objects=custom_objects())
    model_1.set_weights(model.get_weights())
    model = model_1
    files = {}
    for file, convert in ((name("fp32", "tflite"), lambda: tflite.export(model, "fp32")),
                          (name("int8", "tflite"), lambda: tflite.export(model, "int8", calib)),
                          (name("int8", "onnx"),
                           lambda: onnx_exporter.export(model, "int8", calib).SerializeToString())):
        files[file] = convert()
        raise_if_received()  # a Ctrl-C TensorFlow swallowed while converting: stop, nothing written
    return files


def _boxes(t: np.ndarray, frame_hw) -> list[tuple]:
    """Targets back to frame boxes (the truth the held-out scenes were encoded from)."""
    rows, cols = t.shape[:2]
    cy, cx = frame_hw[0] / rows, frame_hw[1] / cols
    out = []
    for i, j in zip(*np.nonzero(t[:, :, 1] == 1), strict=True):
        w, h = np.exp(t[i, j, 2]) * cx, np.exp(t[i, j, 3]) * cy
        out.append(((j + t[i, j, 4]) * cx - w / 2, (i + t[i, j, 5]) * cy - h / 2, w, h))
    return out


def get_args_parser() -> argparse.ArgumentParser:
    d = LocatorConfig
    p = argparse.ArgumentParser("mnist-edge locator", description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=d.scenes, help="desk scenes to learn from")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="passes over the scenes (default 24, --quick 1; 0, with --init: re-export it as "
                        "today's files, untrained, calibrated on 300 scenes)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (cosine decay)")
    p.add_argument("--init", type=str, default=d.init,
                   help="a locator.keras or locator .tflite to fine-tune instead of starting afresh")
    p.add_argument("--clean-height", type=float, default=d.clean_height,
                   help="clean frames' tallest digits, as a share of the frame's height")
    p.add_argument("--width", type=int, default=d.width,
                   help="channels of the grid-resolution layers (default: the --init's, else 32; "
                        "more than the --init's widens it, its outputs unchanged, to fine-tune)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--workers", type=int, default=d.workers, help="processes drawing scenes")
    p.add_argument("--quick", action="store_true", help="smoke run: 120 scenes, 1 epoch unless --epochs")
    p.add_argument("--data", type=str, default=d.data, help="MNIST .npz or IDX folder")
    p.add_argument("--out", type=str, default=d.out, help="output folder")
    return p


def check_scene_flags(args: argparse.Namespace) -> None:
    """The flags `mnist-edge locator` and `mnist-edge rows` share: one line for a bad one."""
    if args.scenes < 10 or (args.epochs is not None and args.epochs < 0):
        raise UserError("--scenes must be >= 10 and --epochs >= 0")
    check_rate(args.lr)
    check_seed(args.seed)
    if not 1 <= args.workers <= 64:
        raise UserError(f"--workers {args.workers}: expected 1 to 64 processes drawing scenes")


def main(args: argparse.Namespace) -> int:
    check_scene_flags(args)
    if args.epochs == 0 and not args.init:
        raise UserError("--epochs 0 re-exports an --init locator untrained; give --init FILE")
    if args.init and not Path(args.init).is_file():
        raise UserError(f"--init {args.init}: {missing(args.init)} (expected a locator.keras or .tflite)")
    if not HEIGHT_FRAC[0] < args.clean_height <= 0.9:
        raise UserError(f"--clean-height {args.clean_height}: expected a share of the frame's height "
                        f"above {HEIGHT_FRAC[0]} and at most 0.9")
    if args.width is not None and not 8 <= args.width <= 256:
        raise UserError(f"--width {args.width}: expected 8 to 256 channels")
    cfg = LocatorConfig(scenes=args.scenes, epochs=args.epochs, lr=args.lr, seed=args.seed,
                        clean_height=args.clean_height, width=args.width,
                        workers=args.workers, init=args.init, quick=args.quick, data=args.data,
                        out=args.out)
    train(cfg)
    return 0
