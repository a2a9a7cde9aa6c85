"""`mnist-edge export`: fp32 (and with --int8, int8) TFLite and ONNX, each validated, plus a manifest.

    mnist-edge export --int8                       # artifacts/model.keras -> artifacts/model_*.{tflite,onnx}
    mnist-edge export --int8 --formats tflite --io float --calib-samples 1000 --debug
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.contract import (
    BENCH_REPORTS,
    MANIFEST,
    TRAIN_REPORT,
    file_entry,
    model_file,
    read_manifest,
    remove_manifest,
    write_manifest,
)
from edge.errors import UserError, check_seed
from edge.provenance import (
    atomic_path,
    check_out_dir,
    environment,
    report_beside,
    sha256_file,
)
from edge.signals import raise_if_received
from export import onnx as onnx_exporter
from export import tflite as tflite_exporter
from export.calibration import MIN_SAMPLES, SAMPLES, calibration_set
from export.metadata import build
from export.validate import Reference
from train.model import check_archive
from train.tf_logs import to_log_file

log = logging.getLogger(__name__)
EXPORTERS = {"tflite": tflite_exporter, "onnx": onnx_exporter}
VERSIONS = ("tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")


@dataclass
class ExportConfig:
    model: str = "artifacts/model.keras"  # the trained Keras model
    out: str = "artifacts"                # where model_{fp32,int8}.{tflite,onnx} and manifest.json go
    int8: bool = False                    # also write int8 models (full-integer PTQ)
    formats: tuple = ("tflite", "onnx")   # which formats to write
    io: str = "int8"                      # int8 TFLite input/output type: tflite.IO_TYPES
    calib_samples: int = SAMPLES          # class-balanced training images for calibration
    calib_method: str = "minmax"          # ONNX calibration: minmax, entropy or percentile
    per_channel: bool = True              # ONNX per-channel weight scales (TFLite always is)
    seed: int = 0                         # picks the calibration images
    max_drop: float = 0.3                 # fail if an int8 model loses more accuracy (pp) than this
    opset: int = onnx_exporter.OPSET      # ONNX opset
    debug: bool = False                   # write per-layer quantisation error tables
    data: str | None = None               # MNIST location (see train.data.load_mnist)


def _model_file(path: Path) -> Path:
    """--model, there and a zip archive as a .keras file is (checked before export.log is made)."""
    if not path.is_file():
        raise UserError(f"{path}: model not found (train one first: mnist-edge train)")
    check_archive(path, str(path))
    return path


def load_keras_model(path: Path):
    from train.model import load

    model = load(_model_file(path), str(path))
    if tuple(model.input_shape) != (None, 28, 28, 1) or tuple(model.output_shape) != (None, 10):
        raise UserError(f"{path}: model maps {model.input_shape} -> {model.output_shape}, "
                        "expected (None, 28, 28, 1) -> (None, 10)")
    return model


def run_export(cfg: ExportConfig) -> tuple[list, dict]:
    """Every file of cfg.formats at fp32 (and int8), validated, then the manifest: (results, manifest)."""
    from train.data import load_mnist

    check(cfg)
    unknown = set(cfg.formats) - set(EXPORTERS)
    if unknown or not cfg.formats:
        raise UserError(f"--formats {','.join(cfg.formats)}: expected a comma list of "
                        f"{', '.join(EXPORTERS)}")
    model_path = _model_file(Path(cfg.model))
    data = load_mnist(cfg.data)
    calib = calibration_set(data, cfg.calib_samples, cfg.seed) if cfg.int8 else None
    # the converters' TensorSpec dumps (stdout) and TensorFlow's C++ lines go to the log file
    with to_log_file(Path(cfg.out) / "export.log", stdout=True):
        return _export(cfg, model_path, data, calib)


def train_report(model_path: Path) -> dict:
    """The train.json beside a model, if it is that model's (`edge.provenance.report_beside`): one
    naming another file's hash (the model was replaced after training), or unreadable, vouches for
    nothing ({}), with a warning."""
    report, why = report_beside(model_path, TRAIN_REPORT)
    if why:
        log.warning("%s; exporting without it", why)
    return report or {}


def _provenance(cfg: ExportConfig, model, model_path: Path, data, calib) -> dict:
    """What every file and the manifest say made them: model, data, calibration, versions."""
    train_info = train_report(model_path)
    return {
        "arch": train_info.get("arch", model.name),
        "source_model": {"file": model_path.name, "sha256": sha256_file(model_path),
                         "train_test_accuracy": train_info.get("test_accuracy")},
        "data": data.identity(),
        "calibration": None if calib is None else calib.describe() | {
            "onnx_method": cfg.calib_method, "onnx_per_channel": cfg.per_channel,
            "onnx_reduce_range": onnx_exporter.REDUCE_RANGE, "onnx_activations": onnx_exporter.ACTIVATIONS,
            "tflite_io": cfg.io},
        "environment": environment(*VERSIONS),
    }


def _export(cfg: ExportConfig, model_path: Path, data, calib) -> tuple[list, dict]:
    from train.data import preprocess
    from train.model import logits_model

    out = Path(cfg.out)
    model = load_keras_model(model_path)
    log.info("Keras reference on %d test images", len(data.x_test))
    raw = model.predict(preprocess(data.x_test), batch_size=1000, verbose=0)
    net = logits_model(model)  # files output logits when the model ends in a Softmax layer...
    kind = "logits" if net is not model or _logits(raw, model_path) else "probabilities"  # ...or has none
    if kind == "logits" and net is model:
        log.info("%s outputs logits (no softmax at its end): its files say so", model_path.name)
        raw = np.exp(raw - raw.max(axis=1, keepdims=True))
        raw /= raw.sum(axis=1, keepdims=True)
    ref = Reference(data.x_test, data.y_test, raw)
    provenance = _provenance(cfg, model, model_path, data, calib)
    precisions = ["fp32", "int8"] if cfg.int8 else ["fp32"]
    results, files = [], {}
    earlier = _earlier_files(out)
    # the manifest is written last: until then, a stale one must not vouch for the new files
    remove_manifest(out)
    _remove_bench_reports(out)
    for fmt in cfg.formats:
        exp, written = EXPORTERS[fmt], {}
        for precision in precisions:
            path = written[precision] = out / model_file(precision, fmt)
            _write(exp, net, precision, calib, cfg, path, provenance, kind)
            v = exp.validate(path, precision, ref, cfg.max_drop)
            results.append(v)
            files[path.name] = {"format": fmt, "precision": precision, "runtime": exp.RUNTIME,
                                **file_entry(path),
                                "opset": cfg.opset if fmt == "onnx" else None,
                                "validation": asdict(v)}
        if cfg.debug and cfg.int8:
            _debug(exp, net, calib, cfg, written, out)
    manifest = {"keras_test_accuracy": ref.accuracy,
                "config": asdict(cfg) | {"formats": list(cfg.formats)}, **provenance, "files": files}
    write_manifest(out, manifest)
    for name in sorted(earlier - set(files)):  # e.g. int8 files, exported again without --int8
        (out / name).unlink(missing_ok=True)
        log.info("removed %s: an earlier export's file, not written this time", out / name)
    return results, manifest


def _remove_bench_reports(out: Path) -> None:
    """An earlier bench's reports in `out` measured the files this export rewrites or removes: they
    go, with a line saying so, rather than pass for the new files' (`mnist-edge bench` writes them
    again)."""
    stale = [name for name in BENCH_REPORTS if (out / name).is_file()]
    for name in stale:
        (out / name).unlink(missing_ok=True)
    if stale:
        log.info("removed %s from %s: an earlier bench's reports, of the files this export replaces "
                 "(mnist-edge bench writes them again)", ", ".join(stale), out)


def _earlier_files(out: Path) -> set[str]:
    """The model files an earlier export's manifest in `out` lists (none if it has none, or an
    unreadable one): this export removes those it does not write again, so no stale file is taken
    for a current one (`doctor`, `bench`)."""
    try:
        listed = read_manifest(out) or {}
    except UserError:
        return set()
    ours = {model_file(p, f) for p in ("fp32", "int8") for f in EXPORTERS}  # never anything else
    return ours & set(listed.get("files", {}))


def check(cfg: ExportConfig) -> None:
    """Every flag and the output folder, before TensorFlow or the model load: one line if wrong."""
    if cfg.calib_samples < MIN_SAMPLES:
        raise UserError(f"--calib-samples {cfg.calib_samples}: expected at least {MIN_SAMPLES} "
                        "(one per class)")
    check_seed(cfg.seed)
    if not math.isfinite(cfg.max_drop) or cfg.max_drop < 0:
        raise UserError(f"--max-drop {cfg.max_drop}: expected a number of points >= 0")
    if cfg.opset not in onnx_exporter.OPSETS:
        raise UserError(f"--opset {cfg.opset}: expected {onnx_exporter.OPSETS.start}.."
                        f"{onnx_exporter.OPSETS.stop - 1}")
    unused = [flag for name, flag in INT8_ONLY.items() if getattr(cfg, name) != getattr(ExportConfig, name)]
    if unused and not cfg.int8:  # said, not ignored: the files written would not be what was asked
        raise UserError(f"{unused[0]}: only used for the int8 models; add --int8")
    check_out_dir(cfg.out)


INT8_ONLY = {"io": "--io", "calib_samples": "--calib-samples", "calib_method": "--calib-method",
             "per_channel": "--per-tensor", "seed": "--seed", "max_drop": "--max-drop", "debug": "--debug"}


def _io_tensors(content: bytes, suffix: str, runtime: str):
    """The model's input/output tensors as its runtime reports them (quantisation included)."""
    from edge.backends import open_backend

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / f"model{suffix}"
        f.write_bytes(content)
        b = open_backend(f, runtime)
        return b.input, b.output


def _logits(out: np.ndarray, path: Path) -> bool:
    """Are these Keras outputs logits? Yes when they leave 0..1 (a Dense layer without softmax,
    trained with from_logits=True); no for rows of probabilities. Scores in 0..1 that do not sum to
    1 (a sigmoid per class) are neither: the devices' confidence floor would drop every digit."""
    if np.any(out < -1e-3) or np.any(out > 1 + 1e-3):
        return True
    sums = out.sum(axis=1)
    if np.allclose(sums, 1.0, atol=1e-2):
        return False
    raise UserError(f"{path}: its outputs are scores in 0..1 that are not probabilities (rows sum to "
                    f"{float(sums.min()):.3g}..{float(sums.max()):.3g}); export needs a model ending in "
                    "softmax, or in logits (a Dense layer without activation)")


def _write(exp, model, precision, calib, cfg: ExportConfig, path: Path, provenance: dict,
           kind: str = "probabilities") -> None:
    """Convert, embed the metadata (with the I/O quantisation read back), write atomically."""
    converted = exp.export(model, precision, calib, cfg)
    raise_if_received()  # a Ctrl-C TensorFlow swallowed while converting: before anything is written
    io_ = _io_tensors(exp.to_bytes(converted), exp.SUFFIX, exp.RUNTIME)
    exp.save(converted, build(exp.FORMAT, precision, *io_, provenance, kind), path)


def _debug(exp, model, calib, cfg: ExportConfig, written: dict, out: Path) -> None:
    csv = out / f"quant_debug_{exp.FORMAT}.csv"
    log.info("writing per-layer quantisation errors to %s", csv)
    with atomic_path(csv) as tmp:
        exp.debug(model, calib, cfg, written, tmp)
        raise_if_received()  # its conversions, as _write's


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("mnist-edge export", description=__doc__.splitlines()[0])
    d = ExportConfig
    p.add_argument("--model", type=str, default=d.model, help="trained Keras model")
    p.add_argument("--out", type=str, default=d.out, help="output folder")
    p.add_argument("--int8", action="store_true", help="also write full-integer int8 models")
    p.add_argument("--formats", type=str, default=",".join(d.formats),
                   help=f"comma list of {', '.join(EXPORTERS)}")
    p.add_argument("--io", type=str, default=d.io, choices=tflite_exporter.IO_TYPES,
                   help="int8 TFLite input/output type")
    p.add_argument("--calib-samples", type=int, default=d.calib_samples,
                   help="calibration images (train split)")
    p.add_argument("--calib-method", type=str, default=d.calib_method, choices=onnx_exporter.CALIB_METHODS,
                   help="ONNX calibration method")
    p.add_argument("--per-tensor", action="store_true", help="ONNX per-tensor weight scales")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the calibration sample")
    p.add_argument("--max-drop", type=float, default=d.max_drop,
                   help="fail when int8 accuracy drops more than this many points")
    p.add_argument("--opset", type=int, default=d.opset, help="ONNX opset")
    p.add_argument("--debug", action="store_true", help="write per-layer quantisation error CSVs")
    p.add_argument("--data", type=str, default=d.data, help="MNIST .npz or IDX folder")
    return p


def config(args: argparse.Namespace) -> ExportConfig:
    return ExportConfig(model=args.model, out=args.out, int8=args.int8,
                        formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
                        io=args.io, calib_samples=args.calib_samples, calib_method=args.calib_method,
                        per_channel=not args.per_tensor, seed=args.seed, max_drop=args.max_drop,
                        opset=args.opset, debug=args.debug, data=args.data)


def main(args: argparse.Namespace) -> int:
    cfg = config(args)
    results, manifest = run_export(cfg)
    print(f"\nKeras float reference: {100 * manifest['keras_test_accuracy']:.2f} % on "
          f"{manifest['data']['test_size']} test digits [{manifest['data']['source']}]")
    for v in results:
        size = manifest["files"][v.file]["bytes"]
        print(f"{v.line()}  ({size / 1024:.1f} KiB)")
    print(f"wrote {Path(cfg.out) / MANIFEST}")
    return 0 if all(v.ok for v in results) else 1
