"""`mnist-edge rows`: train the row reader on the rows a locator finds in scenes of training digits.

    mnist-edge rows --data ../shared/data/mnist.npz --out artifacts         # ~30 min on 2 cores
    mnist-edge rows --quick --out /tmp/run                                   # smoke run
    mnist-edge rows --init artifacts/rows.keras --seed 2 --epochs 8 --lr 0.001 --out tuned  # more scenes

Scenes come from benchmarks/desk.py (desk) and benchmarks/synthetic.py (clean) with MNIST *training*
digits only (the frame benchmark draws *test* digits). The locator (`--locator`, the shipped one by
default) finds each scene's digits as camera finds them, `edge.rows` groups its boxes into rows and
cuts each out as a strip; a strip's label is the true digits whose centres lie in it. The network
reads a strip into 56 steps (a quarter of its width) of 11 classes (blank and 0-9), learns by CTC.
Writes rows_int8.tflite, rows_fp32.tflite, rows_int8.onnx, rows.keras and, last, rows.json (settings,
data, versions, each file's share of held-out rows read exactly, size and SHA-256).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge import rows as R
from edge.contract import ROWS_REPORT, file_entry, rows_file
from edge.errors import UserError, missing
from edge.provenance import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    check_out_dir,
    environment,
    file_record,
    init_record,
)
from train.data import load_mnist
from train.locator import check_scene_flags, export_all
from train.model import check_archive
from train.tf_logs import to_log_file

log = logging.getLogger(__name__)
MAX_DIGITS = 6  # the most digits a strip's label holds (a desk scene's row); longer ones are left out


@dataclass
class RowsConfig:
    scenes: int = 80000       # scenes of training digits to learn from (40,000 read 2 points fewer
    #                            held-out rows exactly)
    clean_share: float = 0.25  # share of them drawn as clean frames (plain paper, digits apart); the
    #                            rest desk scenes
    val_scenes: int = 1000    # more, from other training digits and seeds, to measure on
    epochs: int | None = None  # passes over the strips; None: 16 (--quick: 1)
    batch_size: int = 64      # strips per optimiser step
    lr: float = 3e-3          # peak learning rate (Adam: 5 % warm-up, then cosine decay)
    seed: int = 0             # scenes, order and weights
    init: str | None = None   # a rows.keras to go on training (new scenes: another seed); None: new weights
    locator: str | None = None  # the locator .tflite that finds the rows; None: the shipped one
    workers: int = 2          # processes drawing scenes
    quick: bool = False       # smoke run: 120 scenes, 1 epoch
    data: str | None = None   # MNIST .npz or IDX folder
    out: str = "artifacts"    # folder for rows_{int8,fp32}.tflite, rows_int8.onnx and rows.json: beside
    #                            the model, where camera and predict look for it

    def resolved_epochs(self) -> int:
        """--epochs when given (--quick too), else 1 for --quick, else 16."""
        return self.epochs if self.epochs is not None else (1 if self.quick else 16)


def label(strip: R.Strip, truth: str, boxes: list[tuple]) -> str:
    """The true digits (left to right) whose box centres lie in `strip`."""
    return "".join(d for d, (x, y, w, h) in zip(truth, boxes, strict=True)
                   if strip.holds(x + w / 2, y + h / 2))


def _scenes(images, labels, n: int, seed: int, clean_share: float):
    """n scenes as (BGR image, truth, true boxes): desk scenes, then clean frames."""
    from benchmarks.desk import scene_set
    from benchmarks.synthetic import make_frame

    rng = np.random.default_rng(seed + 7)
    n_clean = int(rng.binomial(n, clean_share))
    for s in scene_set(images, labels, n - n_clean, seed):
        yield s.image, s.truth, s.boxes
    for _ in range(n_clean):
        idx = rng.integers(0, len(images), int(rng.integers(1, 5)))
        image, boxes = make_frame(list(images[idx]), rng)
        yield image, "".join(str(int(d)) for d in labels[idx]), boxes


def _chunk(args) -> tuple[np.ndarray, list[str]]:
    """Scenes of one seed -> (uint8 strips, their labels); run in a worker process."""
    import cv2

    from edge.digits import to_grey
    from edge.locator import Locator

    images, labels, n, seed, clean_share, locator = args
    cv2.setNumThreads(1)
    loc = Locator(locator, flag="--locator")
    strips, texts = [], []
    for image, truth, boxes in _scenes(images, labels, n, seed, clean_share):
        grey = to_grey(image, "bgr")
        for row in R.rows(loc.locate(grey)):
            s = R.strip(grey, row)
            strips.append(s.image)
            texts.append(label(s, truth, boxes))
    return np.stack(strips) if strips else np.zeros((0, *R.STRIP_HW), np.uint8), texts


def make_strips(images, labels, n: int, seed: int, workers: int, clean_share: float, locator: str,
                chunk: int = 200) -> tuple[np.ndarray, list[str]]:
    """n scenes -> (uint8 strips (N, *STRIP_HW), their labels); deterministic whatever `workers` is."""
    jobs = [(images, labels, min(chunk, n - i), seed * 1_000_003 + i, clean_share, locator)
            for i in range(0, n, chunk)]
    t0, xs, ys = time.perf_counter(), [], []

    def collect(k, part):
        xs.append(part[0]), ys.extend(part[1])
        log.info("scenes %d/%d, %d rows (%.0f s)", min(n, (k + 1) * chunk), n, len(ys),
                 time.perf_counter() - t0)

    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for k, part in enumerate(pool.imap(_chunk, jobs)):
                collect(k, part)
    else:
        for k, job in enumerate(jobs):
            collect(k, _chunk(job))
    return np.concatenate(xs), ys


def build(seed: int = 0):
    """The row reader: convolutions down to one row of 56 steps, then 1x3 convolutions along it, to
    CLASSES logits a step (0.14 M parameters, 39 M MACs)."""
    import keras
    from keras import layers

    def cbr(x, filters, kernel=(3, 3), padding="same"):
        x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False)(x)  # BN supplies the bias
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    keras.utils.set_random_seed(seed)
    h, w = R.STRIP_HW
    inp = keras.Input((h, w, 1), name="strip")
    x = layers.MaxPooling2D(2)(cbr(inp, 16))         # 16 x 112
    x = layers.MaxPooling2D(2)(cbr(x, 32))           # 8 x 56
    x = layers.MaxPooling2D((2, 1))(cbr(cbr(x, 64), 64))  # 4 x 56
    x = layers.Dropout(0.2)(cbr(x, 96, (4, 1), "valid"))  # 1 x 56
    x = cbr(cbr(x, 96, (1, 3)), 96, (1, 3))
    x = layers.Conv2D(R.CLASSES, 1, name="logits")(x)
    return keras.Model(inp, layers.Reshape((w // 4, R.CLASSES))(x), name="rows")


def targets(texts: list[str]) -> np.ndarray:
    """Labels -> int32 rows of (length, class of each digit ..., 0 padding): what `ctc_loss` takes."""
    y = np.zeros((len(texts), 1 + MAX_DIGITS), np.int32)
    for i, t in enumerate(texts):
        y[i, 0] = len(t)
        y[i, 1:1 + len(t)] = [int(c) + 1 for c in t]
    return y


def ctc_loss(y_true, y_pred):
    import keras

    steps = keras.ops.shape(y_pred)[1]
    return keras.ops.ctc_loss(keras.ops.cast(y_true[:, 1:], "int32"), y_pred,
                              keras.ops.cast(y_true[:, 0], "int32"),
                              keras.ops.full((keras.ops.shape(y_pred)[0],), steps, "int32"),
                              mask_index=R.BLANK)


def exact(logits: np.ndarray, texts: list[str]) -> float:
    """The share of strips whose greedy decoding is their label."""
    if not texts:
        return 0.0
    return float(np.mean([r.text == t for r, t in zip(R.decode(logits), texts, strict=True)]))


def train(cfg: RowsConfig) -> dict:
    check_out_dir(cfg.out)
    locator = cfg.locator or _shipped_locator()
    start = None
    if cfg.init:  # a mistake is one line, before any scene is drawn; TensorFlow's banners go to the log
        check_archive(cfg.init, f"--init {cfg.init}")
        with to_log_file(Path(cfg.out) / "rows.log"):
            start = _load_init(cfg.init, cfg.seed)
    init = init_record(cfg.init, ROWS_REPORT)  # before this run's report replaces it
    if init and (init["report"] or {}).get("config", {}).get("seed") == cfg.seed:
        log.warning("--init %s learned from --seed %d's scenes: this run draws the same ones again (give "
                    "another --seed for new scenes)", cfg.init, cfg.seed)
    data = load_mnist(cfg.data)
    n, n_val = (120, 30) if cfg.quick else (cfg.scenes, cfg.val_scenes)
    epochs = cfg.resolved_epochs()
    half = len(data.x_train) * 9 // 10  # rows to learn from and to measure on use other digits
    x, y = make_strips(data.x_train[:half], data.y_train[:half], n, cfg.seed, cfg.workers,
                       cfg.clean_share, locator)
    xv, yv = make_strips(data.x_train[half:], data.y_train[half:], n_val, cfg.seed + 1, cfg.workers,
                         cfg.clean_share, locator)
    keep = [k for k, t in enumerate(y) if len(t) <= MAX_DIGITS]
    x, y = x[keep], [y[k] for k in keep]
    keep_v = [k for k, t in enumerate(yv) if len(t) <= MAX_DIGITS]
    xv, yv = xv[keep_v], [yv[k] for k in keep_v]
    out = Path(cfg.out)
    (out / ROWS_REPORT).unlink(missing_ok=True)  # a stale report must not vouch for new files
    with to_log_file(out / "rows.log"):  # Keras's epoch lines (stdout) stay on screen
        import keras
        import tensorflow as tf

        model = start if start is not None else build(cfg.seed)
        steps = max(1, epochs * -(-len(x) // cfg.batch_size))
        sched = keras.optimizers.schedules.CosineDecay(0.0, steps, alpha=0.02, warmup_target=cfg.lr,
                                                       warmup_steps=max(1, steps // 20))
        model.compile(keras.optimizers.Adam(sched), loss=ctc_loss)

        def vary(xb, yb):  # the ink fainter or darker, and the sensor's noise
            gain = tf.random.uniform((tf.shape(xb)[0], 1, 1, 1), 0.6, 1.3, seed=cfg.seed)
            noise = tf.random.normal(tf.shape(xb), 0, 0.03, seed=cfg.seed)
            return tf.clip_by_value(xb * gain + noise, 0, 1), yb

        ds = (tf.data.Dataset.from_tensor_slices((x[..., None], targets(y)))
              .shuffle(len(x), seed=cfg.seed).batch(cfg.batch_size)
              .map(lambda a, b: vary(tf.cast(a, tf.float32) / 255, b)))
        t0 = time.perf_counter()
        if epochs:
            model.fit(ds, epochs=epochs, verbose=2)
        seconds = time.perf_counter() - t0
        with atomic_path(out / "rows.keras", suffix=".keras") as tmp:  # never a half-saved file
            model.save(tmp)
    with to_log_file(out / "rows_export.log", stdout=True):
        files = export_all(model, x[-300:], rows_file)  # as the locator's
    report = {"config": {**asdict(cfg), "epochs": epochs, "locator": str(locator)},
              "locator": file_record(locator), "init": init, "train_seconds": round(seconds, 1),
              "params": int(model.count_params()),
              "data": {**data.identity(), "scenes": n, "val_scenes": n_val, "rows": len(x),
                       "val_rows": len(xv),
                       "digits": "train split only: first 90 % for learning, last 10 % for val"},
              "keras": {"val_exact": round(exact(model.predict(xv[..., None] / 255.0, verbose=0), yv), 4)},
              "environment": environment("tensorflow-cpu", "keras", "numpy", "opencv-python-headless")}
    for name, blob in files.items():
        atomic_write_bytes(out / name, blob)
        reader = R.RowReader(out / name)
        report[name] = {"val_exact": round(exact(np.stack([reader.logits(s) for s in xv]), yv), 4)}
        log.info("%s: %.2f %% of %d held-out rows read exactly", name, 100 * report[name]["val_exact"],
                 len(xv))
    report["files"] = {name: file_entry(out / name) for name in (*files, "rows.keras")}
    atomic_write_json(out / ROWS_REPORT, report)  # written last, as export's manifest
    return report


def _load_init(path: str, seed: int):
    """--init's rows.keras, checked to be a row reader, with the run's seed set (dropout, shuffling)."""
    import keras

    from train.model import load

    model = load(path, f"--init {path}")
    if tuple(model.input_shape[1:]) != (*R.STRIP_HW, 1) or tuple(model.output_shape[2:]) != (R.CLASSES,):
        raise UserError(f"--init {path}: not a row reader (input {list(model.input_shape)}, output "
                        f"{list(model.output_shape)}; expected a rows.keras from `mnist-edge rows`)")
    keras.utils.set_random_seed(seed)
    return model


def _shipped_locator() -> str:
    from edge.contract import locator_file
    from edge.models import model_dirs

    name = locator_file("int8", "tflite")
    for folder in model_dirs():
        if (folder / name).is_file():
            return str(folder / name)
    raise UserError(f"--locator: no shipped {name} in {' or '.join(map(str, model_dirs()))}; "
                    "pass --locator FILE")


def get_args_parser() -> argparse.ArgumentParser:
    d = RowsConfig
    p = argparse.ArgumentParser("mnist-edge rows", description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=d.scenes, help="scenes to learn from")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="passes over the strips (default 16, --quick 1)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--locator", type=str, default=d.locator,
                   help="the locator .tflite that finds the rows (default: the shipped one)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--init", type=str, default=d.init,
                   help="the rows.keras of a `mnist-edge rows` run, to go on training on new scenes "
                        "(give another --seed)")
    p.add_argument("--workers", type=int, default=d.workers, help="processes drawing scenes")
    p.add_argument("--quick", action="store_true", help="smoke run: 120 scenes, 1 epoch unless --epochs")
    p.add_argument("--data", type=str, default=d.data, help="MNIST .npz or IDX folder")
    p.add_argument("--out", type=str, default=d.out, help="output folder")
    return p


def main(args: argparse.Namespace) -> int:
    check_scene_flags(args)
    if args.epochs == 0:  # an untrained reader, vouched for by its rows.json, would read noise
        raise UserError("--epochs 0: a row reader must be trained (expected 1 or more)")
    if args.init and not Path(args.init).is_file():
        raise UserError(f"--init {args.init}: {missing(args.init)} (expected a rows.keras from "
                        "`mnist-edge rows`)")
    if args.init and not args.init.endswith(".keras"):
        raise UserError(f"--init {args.init}: expected the rows.keras a `mnist-edge rows` run writes beside "
                        "its files (models/ ships the row reader's .tflite and .onnx only)")
    if args.locator and not Path(args.locator).is_file():
        raise UserError(f"--locator {args.locator}: {missing(args.locator)} (expected a locator .tflite)")
    train(RowsConfig(scenes=args.scenes, epochs=args.epochs, lr=args.lr, locator=args.locator, seed=args.seed,
                     init=args.init, workers=args.workers, quick=args.quick, data=args.data, out=args.out))
    return 0
