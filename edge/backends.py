"""Interpreters behind one small interface: LiteRT (ai-edge-litert), tflite-runtime, onnxruntime,
OpenVINO.

    >>> from edge.backends import open_backend
    >>> b = open_backend("models/model_int8.tflite", threads=1)
    >>> b.name, b.input.dtype, b.input.scale
    ('litert', dtype('int8'), 0.0039...)

A backend runs a raw tensor and reports its tensors' dtype and quantisation; the `Classifier` does
everything else. Only the interpreter a model needs is imported, so a device needs just one.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import os
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contract import (
    METADATA_NAME,
    MODEL_SUFFIXES,
    RUNTIMES,
    ModelError,
    default_runtimes,
    extra_for,
    parse_metadata,
)
from edge.errors import UserError
from edge.images import shown

log = logging.getLogger(__name__)

MAX_THREADS = 64  # interpreter threads: more is a typo (nothing is gained past the cores, and camera
#   --threads 100000 crashed OpenCV's pool)


@dataclass
class TensorInfo:
    name: str
    shape: tuple          # -1 for a dynamic dimension
    dtype: np.dtype       # float32, int8 or uint8
    scale: float | None   # real = (q - zero_point) * scale, for integer tensors
    zero_point: int | None


def open_flagged(model: str | Path, runtime: str | None, threads: int | None, flag: str):
    """`open_backend` for a file a flag gave (--locator, --rows, ...): its errors about the file are
    led by that flag; those about another flag (--runtime) are left as they are."""
    try:
        return open_backend(model, runtime, threads)
    except UserError as e:
        if not str(e).startswith(str(model)):
            raise
        raise e.__class__(f"{flag} {e}") from None


def check_scales(backend, flag: str, model: str | Path, instead: str) -> None:
    """UserError unless the runtime reports each integer input's and output's scale (OpenVINO does
    not for a .tflite): the message names `instead`, the file or runtime to use."""
    for what, t in (("input", backend.input), ("output", backend.output)):
        if np.issubdtype(t.dtype, np.integer) and t.scale is None:
            raise UserError(f"{flag} {model}: {backend.name} does not report its int8 {what}'s scale; "
                            f"use {instead}")


def pixel_lut(spec: TensorInfo) -> np.ndarray:
    """A 256-entry table (for cv2.LUT): a uint8 pixel -> what this input takes for pixel / 255,
    quantised with its scale and zero point when it is an integer input."""
    real = np.arange(256, dtype=np.float32) / 255.0
    if spec.scale is None:
        return real.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    q = np.round(real / np.float32(spec.scale)) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(y: np.ndarray, out: TensorInfo) -> np.ndarray:
    """An output as float32: dequantised when it is an integer output (OpenVINO gives a .tflite's
    outputs as float16: widened)."""
    if out.scale is not None:
        return (y.astype(np.float32) - np.float32(out.zero_point)) * np.float32(out.scale)
    return y.astype(np.float32, copy=False)


def import_runtime(name: str):
    """A runtime's module (RUNTIMES[name].module), imported. OpenVINO's import sends a usage event to
    Intel's analytics (its `openvino_telemetry`) unless the user declined it or CI is set: where the
    user has not chosen either way (no consent file), this process declines; a choice made with
    OpenVINO's `opt_in_out` stands. (Where the send fails, its child process printed a traceback.)"""
    if name == "openvino":
        _decline_unchosen_telemetry()
    return importlib.import_module(RUNTIMES[name].module)


def _decline_unchosen_telemetry() -> None:
    try:
        from openvino_telemetry.utils import opt_in_checker as oc
    except Exception:  # not installed (or reorganised): nothing of it runs
        return
    check = oc.OptInChecker.check
    if getattr(check, "mnist_edge", False):
        return

    def unchosen_declined(self, *args, **kwargs):
        result = check(self, *args, **kwargs)
        return oc.ConsentCheckResult.DECLINED if result == oc.ConsentCheckResult.NO_FILE else result

    unchosen_declined.mnist_edge = True
    oc.OptInChecker.check = unchosen_declined


def runtime_status() -> dict[str, str]:
    """Each runtime's version if it imports here, else why not (e.g. a numpy ABI mismatch)."""
    out = {}
    for rt in RUNTIMES.values():
        try:
            import_runtime(rt.name)
            out[rt.name] = importlib.metadata.version(rt.distribution)
        except Exception as e:  # ImportError, or the AttributeError numpy 2 gives old wheels
            out[rt.name] = f"unavailable ({e.__class__.__name__}: {str(e).splitlines()[0][:80]})"
    return out


def default_runtime(path: Path) -> str:
    """The first runtime that can run this file and imports here."""
    for rt in default_runtimes(path.suffix):
        try:
            import_runtime(rt)
            return rt
        except Exception:
            continue
    raise UserError(f"{path}: no runtime for {path.suffix} files is installed "
                    f"(pip install 'mnist-edge[{extra_for(path.suffix)}]')")


def open_backend(path: str | Path, runtime: str | None = None, threads: int | None = 1):
    """Load a model; threads=None lets the runtime use every core."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    if path.suffix not in MODEL_SUFFIXES:
        raise UserError(f"{path}: expected a {' or '.join(MODEL_SUFFIXES)} model")
    if path.stat().st_size == 0:  # each runtime says something else about it, none says "empty"
        raise UserError(f"{path}: an empty file (0 bytes), expected a {path.suffix} model")
    runtime = runtime or default_runtime(path)
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime}: expected one of {', '.join(RUNTIMES)}")
    if path.suffix not in RUNTIMES[runtime].suffixes:
        raise UserError(f"--runtime {runtime} cannot run {path.name}")
    try:
        module = import_runtime(runtime)
    except Exception as e:
        raise UserError(f"--runtime {runtime}: cannot import {RUNTIMES[runtime].module} ({e})") from None
    cls = {"onnxruntime": OnnxBackend, "openvino": OpenVINOBackend}.get(runtime, TFLiteBackend)
    try:
        return cls(path, module, threads, runtime)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{path}: {runtime} cannot load it ({str(e).splitlines()[0]})") from None
    except Exception as e:  # onnxruntime raises its own exception types for a bad file
        if type(e).__module__.startswith(("onnxruntime", "openvino")):
            raise UserError(f"{path}: {runtime} cannot load it ({str(e).splitlines()[0]})") from None
        raise


XNNPACK_NOTICE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."  # the line LiteRT and
#   tflite-runtime print on stderr, from C++, the first time a process applies XNNPACK: not the user's
#   concern on every run of predict or camera, and it interleaved with their own output


@contextlib.contextmanager
def _without_notice(notice: bytes):
    """Run the block with file descriptor 2 caught; give back to stderr all it wrote but `notice`."""
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # stderr closed (`2>&-`): nothing to keep quiet
        saved = None
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = b"".join(line for line in caught if line.rstrip(b"\r\n") != notice)
            if rest:
                os.write(2, rest)


DAMAGED = ("its metadata (the archive appended to the model) is damaged: the file was cut short or "
           "altered; export or copy it again")


class TFLiteBackend:
    """ai-edge-litert or tflite-runtime (same Interpreter API); XNNPACK is their default CPU path."""

    def __init__(self, path: Path, module, threads: int | None, name: str):
        self.name, self.path = name, path
        self._content = path.read_bytes()  # bytes, not a name: any file name loads (and stays alive)
        self.interp = module.Interpreter(model_content=self._content, num_threads=threads)
        with _without_notice(XNNPACK_NOTICE):
            self.interp.allocate_tensors()  # where the runtime applies XNNPACK, and says so
        self.n_inputs = len(self.interp.get_input_details())
        self.n_outputs = len(self.interp.get_output_details())
        self._in = self.interp.get_input_details()[0]
        self._out = self.interp.get_output_details()[0]
        self.input, self.output = _tflite_info(self._in), _tflite_info(self._out)
        self._batch = int(self._in["shape"][0])
        self._in_idx, self._out_idx = self._in["index"], self._out["index"]

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self._batch:  # the batch dimension is dynamic (shape_signature -1)
            self.interp.resize_tensor_input(self._in_idx, list(x.shape))
            self.interp.allocate_tensors()
            self._batch = x.shape[0]
        self.interp.set_tensor(self._in_idx, x)
        self.interp.invoke()
        return self.interp.get_tensor(self._out_idx)

    def metadata(self) -> dict | None:
        """The JSON appended to the flatbuffer as an associated file (a zip archive after it)."""
        try:
            with zipfile.ZipFile(self.path) as z:
                raw = z.read(METADATA_NAME)
        except KeyError:
            return None
        except zipfile.BadZipFile:
            if b"PK\x03\x04" in self.path.read_bytes():  # an archive was appended, and it cannot be read
                raise ModelError(f"{shown(self.path)}: {DAMAGED}") from None
            return None
        except zlib.error:
            raise ModelError(f"{shown(self.path)}: {DAMAGED}") from None
        return parse_metadata(raw, self.path)


def _tflite_info(d: dict) -> TensorInfo:
    scale, zp = d.get("quantization", (0.0, 0))
    integer = np.issubdtype(d["dtype"], np.integer)
    shape = tuple(int(s) for s in d.get("shape_signature", d["shape"]))
    return TensorInfo(d["name"], shape, np.dtype(d["dtype"]), float(scale) if integer else None,
                      int(zp) if integer else None)


class OnnxBackend:
    """onnxruntime on the CPU; QDQ int8 models keep float inputs and outputs."""

    _DTYPES = {"float": np.float32, "double": np.float64, "float16": np.float16}  # others: numpy's names

    def __init__(self, path: Path, ort, threads: int, name: str):
        self.name, self.path = name, path
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or 0  # 0: all cores
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(path.read_bytes(), so, providers=["CPUExecutionProvider"])
        i, o = self.sess.get_inputs()[0], self.sess.get_outputs()[0]
        self.n_inputs, self.n_outputs = len(self.sess.get_inputs()), len(self.sess.get_outputs())
        meta = self.metadata() or {}
        self.input = self._info(i, meta.get("input", {}))
        self.output = self._info(o, meta.get("output", {}))
        self._in_name, self._out_name = i.name, o.name

    def _info(self, arg, meta: dict) -> TensorInfo:
        shape = tuple(s if isinstance(s, int) else -1 for s in arg.shape)
        name = arg.type.removeprefix("tensor(").removesuffix(")")
        try:
            dtype = np.dtype(self._DTYPES.get(name, name))  # the contract decides what is accepted
        except TypeError:
            dtype = np.dtype("V1")  # a type numpy has no name for (string, bfloat16)
        q = meta.get("quantization") if np.issubdtype(dtype, np.integer) else None
        return TensorInfo(arg.name, shape, dtype, q and q["scale"], q and q["zero_point"])

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run([self._out_name], {self._in_name: x})[0]

    def metadata(self) -> dict | None:
        return parse_metadata(self.sess.get_modelmeta().custom_metadata_map.get(METADATA_NAME), self.path)


class OpenVINOBackend:
    """OpenVINO's CPU plugin; it reads .tflite and .onnx directly. Integer I/O quantisation (which
    OpenVINO does not report) comes from the metadata that travels in the file."""

    _DTYPES = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8, "u8": np.uint8,
               "i32": np.int32, "i64": np.int64}  # others show as void: edge.contract refuses them

    def __init__(self, path: Path, ov, threads: int | None, name: str):
        self.name, self.path = name, path
        core = ov.Core()
        self.model = core.read_model(str(path))
        self.n_inputs, self.n_outputs = len(self.model.inputs), len(self.model.outputs)
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.int8_kernels = not (path.suffix == ".tflite" and _saturating_int8())
        if not self.int8_kernels:
            # Without VNNI, x86 int8 kernels sum u8 x s8 pairs into int16 (VPMADDUBSW) and saturate on
            # full 8-bit weights, as TFLite's are: the first conv of the edge model's int8 TFLite then
            # read 0.7 % of digits differently from LiteRT (AMD EPYC, AVX2). OpenVINO's switch for its
            # low-precision pass runs the same graph dequantised instead: LiteRT's codes exactly.
            config["LP_TRANSFORMS_MODE"] = False
        self.compiled = core.compile_model(self.model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        meta = self.metadata() or {}
        self.input = self._info(self.model.inputs[0], meta.get("input", {}))
        self.output = self._info(self.model.outputs[0], meta.get("output", {}))

    def _info(self, port, meta: dict) -> TensorInfo:
        shape = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
        dtype = np.dtype(self._DTYPES.get(port.get_element_type().get_type_name(), "V1"))
        q = (meta.get("quantization") or {}) if np.issubdtype(dtype, np.integer) else {}
        return TensorInfo(port.get_any_name(), shape, dtype, q.get("scale"), q.get("zero_point"))

    def run(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: x}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()

    def metadata(self) -> dict | None:
        """The same JSON the other backends read: the .tflite's associated file, or the .onnx's
        metadata_props entry (OpenVINO keeps it under rt_info["framework"])."""
        if self.path.suffix == ".tflite":
            return TFLiteBackend.metadata(self)
        key = ["framework", METADATA_NAME]
        raw = self.model.get_rt_info(key).astype(str) if self.model.has_rt_info(key) else None
        return parse_metadata(raw, self.path)


def _saturating_int8() -> bool:
    """x86 without VNNI (AVX2 or plain AVX-512): int8 dot products go through 16-bit pair sums."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i686"):
        return False
    try:
        flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "").split()
    except OSError:
        return False
    return bool(flags) and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)
