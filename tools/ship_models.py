"""Ship a benchmarked run as `models/`: the exported files, their manifest and a model card.

    python tools/ship_models.py --artifacts artifacts --out models     # what `make models` runs

The release step: run it after a full `make run`, then commit models/.

Everything in the card is read from the run's own train.json, manifest.json and bench.json, so it
quotes only measured figures; the files are copied byte for byte, so the manifest's hashes hold.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from edge.contract import (
    BENCH_REPORTS,
    EXPORTED,
    KERAS_MODEL,
    LOCATOR_REPORT,
    MANIFEST,
    ROWS_REPORT,
    TRAIN_REPORT,
    failed_validation,
    locator_file,
    read_manifest,
    rows_file,
)
from edge.errors import UserError
from edge.provenance import atomic_path, atomic_write_bytes, report_beside, sha256_file
from train.train import TrainConfig

SHIP = (*EXPORTED, KERAS_MODEL, MANIFEST, TRAIN_REPORT, *BENCH_REPORTS)  # copied as is
# the digit locator (`mnist-edge locator`) camera and predict use by default, shipped beside them
LOCATOR = (locator_file("int8", "tflite"), locator_file("int8", "onnx"), LOCATOR_REPORT)
# the row reader (`mnist-edge rows`) they read the located digits with, shipped beside them too
ROWS = (rows_file("int8", "tflite"), rows_file("int8", "onnx"), ROWS_REPORT)
# train settings a card's command gives when off today's default: (TrainConfig field, flag, the value a
# train.json written before the field existed was trained with)
RECIPE = (("lr", "--lr", 3e-3), ("val_size", "--val-size", 5000), ("dropout", "--dropout", 0.25))
# the settings a locator's or row reader's command gives, from its report: (config key, flag)
HELPER_FLAGS = (("scenes", "--scenes"), ("epochs", "--epochs"), ("lr", "--lr"),
                ("clean_height", "--clean-height"), ("width", "--width"), ("locator", "--locator"),
                ("seed", "--seed"))
NAMED = ("locator",)  # of those, files: given by name


def _load(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{folder / name}: expected the JSON a full `make run` writes ({e})") from None


def train_command(train: dict) -> str:
    """The `mnist-edge train` line that made this train.json (flags off their defaults, --init's
    file by name)."""
    cfg, d = train["config"], TrainConfig
    flags = f"--arch {cfg['arch']} --epochs {train['epochs']} --batch-size {cfg['batch_size']} " \
            f"--seed {cfg['seed']}"
    for key, flag, before in RECIPE:
        if cfg.get(key, before) != getattr(d, key):
            flags += f" {flag} {cfg.get(key, before)}"
    if cfg.get("init"):
        flags = f"--init {Path(cfg['init']).name} " + flags
    if not cfg.get("augment", True):
        flags += " --no-augment"
    if cfg.get("desk_scenes"):
        flags += f" --desk-scenes {cfg['desk_scenes']}"
        if cfg.get("desk_locator"):
            flags += f" --desk-locator {Path(cfg['desk_locator']).name}"
    return f"mnist-edge train {flags} --data mnist.npz"


def chain(report: dict, command) -> list[str]:
    """Every command behind a run, first first: `command(report)` of the run, after those of the run
    its --init came from, followed back through the report each recorded; a start not on record is
    said to be so."""
    init = report.get("init")
    if not init:
        return [command(report)]
    before = (chain(init["report"], command) if init.get("report") else
              [f"# --init {init['file']} (SHA-256 {init['sha256']}): the run that made it is not on record"])
    return [*before, command(report)]


def helper_command(tool: str):
    """report -> the `mnist-edge locator` or `mnist-edge rows` line that made it (HELPER_FLAGS it
    recorded, files by name)."""
    def command(report: dict) -> str:
        cfg = report["config"]
        flags = "".join(f" {flag} {Path(str(cfg[key])).name if key in NAMED else cfg[key]}"
                        for key, flag in HELPER_FLAGS if cfg.get(key) is not None)
        init = f" --init {report['init']['file']}" if report.get("init") else ""
        return f"mnist-edge {tool}{init}{flags} --data mnist.npz"
    return command


def helpers(folder: Path) -> str:
    """The card's section on the locator and the row reader a run ships beside its model, from their
    reports; "" when it ships neither. A report that is not what its command writes is one line."""
    parts, titles, reports = [], [], []
    for tool, title, report_name, names, what, held in (
            ("locator", "digit locator", LOCATOR_REPORT, LOCATOR[:2],
             "finds the digits: marks their centres on a coarse grid",
             lambda r: f"recall {100 * r['recall']:.1f} %, precision {100 * r['precision']:.1f} %"),
            ("rows", "row reader", ROWS_REPORT, ROWS[:2], "reads each row of located digits whole (CTC)",
             lambda r: f"{100 * r['val_exact']:.1f} % of their rows read exactly")):
        if not (folder / report_name).is_file():
            continue
        report = _load(folder, report_name)
        try:
            data, share = report["data"], report["config"].get("clean_share", 0.25)
            table = "\n".join(f"| {n} | {what} | {report['params']:,} | {held(report[n])} | "
                               f"`{report['files'][n]['sha256']}` |" for n in names if n in report)
            parts.append(f"""
### `mnist-edge {tool}`
Learned from {data['scenes']:,} generated scenes ({100 * share:.0f} % clean, the rest desk) of MNIST
*training* digits; measured on {data['val_scenes']:,} more, of training digits it never learned from.
Last run: git `{report['environment']['git_commit']}`, {report['train_seconds']:.0f} s of training.

| file | what it does | parameters | held-out scenes | SHA-256 |
|---|---|---|---|---|
{table}

```sh
{chr(10).join(chain(report, helper_command(tool)))}
```
""")
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise UserError(f"{folder / report_name}: not the report `mnist-edge {tool}` writes "
                            f"({e.__class__.__name__}: {e}); not shipped") from None
        titles.append(title)
        reports.append(f"`{report_name}`")
    if not parts:
        return ""
    many = len(parts) > 1
    intro = (f"{'Two more int8 networks ship' if many else 'One more int8 network ships'} beside the "
             f"classifier; `camera` and `predict` use {'them' if many else 'it'} by default,\nand "
             f"{' and '.join(reports)} name{'' if many else 's'} each run's data, settings, versions and "
             "files.")
    return (f"\n## The {' and the '.join(titles)}\n{intro}\n"
            + "".join(parts))


def card(train: dict, manifest: dict, bench: dict, extra: str = "") -> str:
    cfg, data, dev = train["config"], train["data"], bench["device"]
    start = (train.get("init") or {}).get("report")  # a fine-tune: the run it started from
    commands = "\n".join(chain(train, train_command))
    calib = manifest["calibration"] or {}
    rows = [r for r in bench["rows"] if r["model"] == "edge" and r["threads"] == 1]
    base = [r for r in bench["rows"] if r["model"] == "baseline" and r["threads"] == 1]
    s = bench.get("summary") or {}

    def line(r):
        lat = r.get("latency_us") or {}
        acc = "-" if r.get("accuracy") is None else f"{100 * r['accuracy']:.2f}"
        delta = "-" if r.get("delta_pp") is None else f"{r['delta_pp']:+.2f}"
        agree = "-" if r.get("agreement") is None else f"{100 * r['agreement']:.2f}"
        p50 = "-" if lat.get("p50") is None else f"{lat['p50']:.1f}"
        p90 = "-" if lat.get("p90") is None else f"{lat['p90']:.1f}"
        return (f"| {r['model']} | {r['file']} | {r['runtime']} | {acc} | {delta} | {agree} | {p50} | {p90} "
                f"| {r['size_bytes'] / 1024:.1f} |")

    table = "\n".join(line(r) for r in rows + base)
    files = "\n".join(f"| {n} | {f['bytes'] / 1024:.1f} KiB | `{f['sha256']}` |"
                      for n, f in manifest["files"].items())
    speed = ""
    if s.get("speedup_vs_baseline_int8_tflite"):
        speed = (f"\nOn this machine, one thread, batch 1, p50: the int8 TFLite model is "
                 f"**{s['speedup_vs_baseline_int8_tflite']:.1f}x** faster than the classic Keras CNN's "
                 f"int8 TFLite and **{s['speedup_vs_baseline_keras']:.0f}x** faster than that CNN in "
                 "Keras.\n")
    versions = train["environment"]["packages"]
    took = f"{train['epochs']} epochs in {train['seconds']:.0f} s"
    if start:
        took = f"{start['epochs']} epochs in {start['seconds']:.0f} s, then a fine-tune of " + took
    if train.get("val_accuracy") is None:  # `--val-size 0`: every training image learned from
        held_out, picked = "No training images were held out: the last epoch was kept", "(last epoch)"
        if start and start.get("val_accuracy") is not None:
            held_out = (f"The first run held out {start.get('val_images', 5000):,} training images to choose "
                        "its best epoch; the fine-tune learned from all of them and kept its last epoch")
    else:
        held_out = (f"{train.get('val_images', cfg['val_size']):,} training images were held out to "
                    "choose the best epoch")
        picked = (f"(best epoch\n{train['best_epoch']}), validation accuracy "
                  f"{100 * train['val_accuracy']:.2f} %")
    return f"""# Model card: mnist-edge `{train['arch']}` digit classifier

A {train['params']:,}-parameter, {train['macs'] / 1e6:.2f}M-MAC convolutional network that reads one
handwritten digit from a 28x28 grey image (white ink on black, MNIST-centred; `edge/` turns camera frames
into that). Built for int8 inference on CPUs such as a Raspberry Pi's.

**Use it for** digits written on paper and seen by a camera, each found and cropped by `edge/`
(its digit locator, or segmentation).
**Not for** letters, printed fonts far from handwriting, or as a measure of anything but MNIST-like digits:
its accuracy was measured on MNIST's test set only.

## Data
{data['source']} ({'full MNIST' if data['full_mnist'] else 'NOT full MNIST'}: {data['train_size']:,} train /
{data['test_size']:,} test images). SHA-256 of the test images: `{data['sha256']['x_test']}`.
{held_out}; the test set was only used to report each run's accuracy.{_desk(train)}

## How it was made
```sh
{commands}
mnist-edge export --int8 --calib-samples {calib.get('samples')} --calib-method {calib.get('onnx_method')}
mnist-edge bench
```
Training: {took} on the machine below {picked}, Keras test accuracy
{100 * train['test_accuracy']:.2f} %. Code: git `{train['environment']['git_commit']}`; TensorFlow
{versions.get('tensorflow-cpu')}, Keras {versions.get('keras')}.
Calibration: {calib.get('samples')} class-balanced training images (seed {calib.get('seed')}).

## Accuracy and latency (`mnist-edge bench`, one thread, batch 1)
| model | file | runtime | test acc % | Δ pp vs Keras | agreement % | p50 µs | p90 µs | KiB |
|---|---|---|---|---|---|---|---|---|
{table}
{speed}
Latency is one `Classifier.classify()` call on one image, as a device calls it. Measured on
{dev.get('name')}: {dev.get('cpu_model')}, {dev.get('cores')} cores, {dev.get('arch')}, {dev.get('os')},
Python {dev.get('python')}, load average at start {dev.get('load_average')}. The full table, with 2 threads,
throughput, memory and load times, is in `bench.md`.

## int8 and the CPU
The int8 kernels (XNNPACK in LiteRT and tflite-runtime, MLAS in onnxruntime) are picked at start
from the CPU's features. Arm: the dot product (`asimddp`: SDOT/UDOT, Armv8.2), which the Raspberry
Pi 5's Cortex-A76 has, and `i8mm` (SMMLA, Armv8.6); the Pi 4's Cortex-A72 has neither, so int8 runs
there on plain NEON multiply-accumulates. x86: `avx2` (16-bit pair sums), `avx512_vnni`/`avx_vnni`
(VPDPBUSD), `amx_int8`. `mnist-edge doctor` prints the ones a device has. The digits read are the
same either way (`make pi` checks both Pi CPUs under emulation against x86); the latencies above are
the named machine's, never a Pi's.

## Files
| file | size | SHA-256 |
|---|---|---|
{files}

Each model carries its labels, input layout, normalisation and I/O quantisation inside it
(see `manifest.json`).
{extra}"""


def _desk(train: dict) -> str:
    """The desk crops a run learned from, if any."""
    desk = train.get("desk_crops") or {}
    if not desk.get("scenes"):
        return ""
    how = (f"the digit locator `{desk['locator']['file']}` (SHA-256 `{desk['locator']['sha256'][:16]}...`)"
           if desk.get("locator") else "segmentation")
    return (f"\nIt also learned from {desk['crops']:,} crops of {desk['scenes']:,} generated desk scenes of "
            f"*training* digits, cut by {how} as a device cuts them (`train/scenes.py`).")


def ship(artifacts: Path, out: Path) -> None:
    train, bench = _load(artifacts, TRAIN_REPORT), _load(artifacts, BENCH_REPORTS[0])
    manifest = read_manifest(artifacts)
    if manifest is None:
        raise UserError(f"{artifacts / MANIFEST}: not found (expected the JSON a full `make run` writes)")
    if not train["data"]["full_mnist"]:
        raise UserError(f"{artifacts}: trained on {train['data']['source']}, not full MNIST; not shipping it")
    _, why = report_beside(artifacts / KERAS_MODEL, TRAIN_REPORT)  # trained into this model.keras...
    if why:
        raise UserError(f"{why}; not shipped")
    if (manifest.get("source_model") or {}).get("sha256") != sha256_file(artifacts / KERAS_MODEL):
        raise UserError(f"{artifacts / MANIFEST}: its files were exported from another model than "  # ...and
                        f"{KERAS_MODEL} (run mnist-edge export again); not shipped")  # exported from it
    for name, entry in manifest.get("files", {}).items():
        if why := failed_validation(entry):
            raise UserError(f"{artifacts / MANIFEST}: {name} failed export's validation ({why}); not shipped")
    extra = helpers(artifacts)  # the locator and row reader it ships; a bad report stops all, here
    for name in SHIP + tuple(n for n in LOCATOR + ROWS if (artifacts / n).is_file()):
        with atomic_path(out / name) as tmp:
            shutil.copyfile(artifacts / name, tmp)
    for name in LOCATOR + ROWS:  # an earlier run's locator or row reader would be read with this model
        if not (artifacts / name).is_file():
            (out / name).unlink(missing_ok=True)
    atomic_write_bytes(out / "MODEL_CARD.md", card(train, manifest, bench, extra).encode())


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python tools/ship_models.py", description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=str, default="artifacts", help="a folder from `make run`")
    p.add_argument("--out", type=str, default="models", help="where to ship it")
    return p


def main(args: argparse.Namespace) -> int:
    ship(Path(args.artifacts), Path(args.out))
    print(f"shipped {args.artifacts} to {args.out}/ with MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(get_args_parser().parse_args()))
    except UserError as e:
        print(f"ship_models: error: {e}", file=sys.stderr)
        sys.exit(2)
