"""Bad input, every command: exit 2 with one line naming the file or flag, never a traceback.

A corpus generated here (file names that are not UTF-8, decompression bombs, truncated and fake
images, models that break the contract in edge.contract, malformed manifests, killed exports, a
corrupt gzip IDX, wrong flags, bench files with wrong value types) is run through the real
`mnist-edge` script. Device commands use the shipped models/; nothing is trained; the network is
loopback only. Also: stdout that goes away, the live page under misbehaving clients, a stream that
never answers and SIGTERM, and a camera loop that reads past bad frames.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, cli

MODELS = REPO / "models"
TFLITE, ONNX = MODELS / "model_int8.tflite", MODELS / "model_int8.onnx"
EXE = Path(sys.executable).parent / "mnist-edge"
NON_UTF8 = os.fsdecode(b"bad\xffname")  # a name with a byte that is not UTF-8 (surrogate-escaped)


# ---------------------------------------------------------------- the corpus


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _digits_png() -> bytes:
    img = np.full((60, 120, 3), 255, np.uint8)
    cv2.putText(img, "42", (10, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4)
    return cv2.imencode(".png", img)[1].tobytes()


def _bombs() -> dict[str, bytes]:
    """Files of a few bytes whose headers declare 60000x60000 pixels, one per format."""
    w = h = 60000
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _png_chunk(b"IEND", b""))
    jpeg = (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\1\1\0\0\1\0\1\0\0"
            + b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00" + b"\xff\xd9")
    bmp = b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHH", 40, w, h, 1, 24) + b"\0" * 24
    webp = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0" * 4 \
        + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    tiff = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 2) \
        + struct.pack("<HHII", 256, 4, 1, w) + struct.pack("<HHII", 257, 4, 1, h) + b"\0" * 4
    return {"bomb.png": png, "bomb.jpg": jpeg, "bomb.bmp": bmp, "bomb.webp": webp, "bomb.tif": tiff,
            "bomb.pgm": f"P5\n{w} {h}\n255\n".encode() + b"\0" * 16}


def _hidden_bombs() -> dict[str, bytes]:
    """Bombs whose declared size lies beyond the bytes the header check reads (HEADER_BYTES): a TIFF
    whose directory is at the end of the file, as libtiff writes it, and a JPEG padded with ignored
    segments before its frame header. 20000x20000: over the 64 Mpx limit, under OpenCV's own 1 Gpx."""
    from edge.images import HEADER_BYTES

    w = h = 20000
    far = 8 + HEADER_BYTES
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0" * 4
    tiff = b"II*\0" + struct.pack("<I", far) + b"\0" * (far - 8) + ifd
    app15 = b"\xff\xef" + struct.pack(">H", 65535) + b"\0" * 65533
    jpeg = (b"\xff\xd8" + app15 * 2 + b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
            + b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, 1, 0, 0, 63, 0) + b"\0" * 64 + b"\xff\xd9")
    return {"hidden_bomb.tif": tiff, "padded_bomb.jpg": jpeg}


BAD_IMAGES = {  # name -> (bytes, what the error line says)
    **{name: (data, "declares 60000x60000 pixels") for name, data in _bombs().items()},
    **{name: (data, "declares more than the 64 Mpx limit") for name, data in _hidden_bombs().items()},
    "zero.png": (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0)),
                 "declares 0x0 pixels"),
    "truncated.png": (None, "cannot decode it"),  # filled in below: a real PNG cut short
    "cut_header.png": (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0", "cannot decode it"),  # OpenCV logs its
    #   own [ERROR] line for this one unless silenced: still one error line
    "notes.png": (b"hello, not an image\n", "not an image file OpenCV can read"),
    "empty.jpg": (b"", "an empty file (0 bytes), expected an image"),
    "garbage.jpg": (b"\xff\xd8\xff" + bytes(range(256)) * 4, "cannot decode it"),
}


def _tflite_with_metadata(meta: bytes) -> bytes:
    data = TFLITE.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mnist_edge.json", meta)
    return data[:data.rfind(b"PK\x03\x04")] + buf.getvalue()


def _onnx_graph(classes: int = 10, dtype: str = "float", outputs: int = 1) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    t, npd = {"float": (TensorProto.FLOAT, np.float32), "double": (TensorProto.DOUBLE, np.float64)}[dtype]
    nodes = [helper.make_node("Reshape", ["image", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    outs = [helper.make_tensor_value_info("probs", t, ["N", classes])]
    if outputs == 2:
        nodes.append(helper.make_node("Identity", ["logits"], ["extra"]))
        outs.append(helper.make_tensor_value_info("extra", t, ["N", classes]))
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("image", t, ["N", 28, 28, 1])], outs,
        [numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
         numpy_helper.from_array(np.zeros((784, classes), npd), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _onnx_with_metadata(meta: str) -> bytes:
    import onnx

    model = onnx.load(str(ONNX))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"mnist_edge.json": meta})
    return model.SerializeToString()


def _meta(**fields) -> bytes:
    return json.dumps(fields).encode()


BAD_MODELS = {  # name -> (maker, the field the error line names)
    "out5.onnx": (lambda: _onnx_graph(5), "output shape"),
    "out12.onnx": (lambda: _onnx_graph(12), "output shape"),
    "two_outputs.onnx": (lambda: _onnx_graph(outputs=2), "2 outputs"),
    "double_input.onnx": (lambda: _onnx_graph(dtype="double"), "input type float64"),
    "meta_list.tflite": (lambda: _tflite_with_metadata(b"[1, 2]"), "is a JSON list"),
    "meta_not_json.tflite": (lambda: _tflite_with_metadata(b"{nope"), "not valid JSON"),
    "labels_empty.tflite": (lambda: _tflite_with_metadata(_meta(labels=[])), "labels"),
    "labels_short.tflite": (lambda: _tflite_with_metadata(_meta(labels=list("012345678"))), "labels"),
    "labels_blank.tflite": (lambda: _tflite_with_metadata(_meta(labels=[""] * 10)), "labels"),
    "divide_by_text.tflite": (lambda: _tflite_with_metadata(
        _meta(normalization={"divide_by": "255", "subtract": 0})), "normalization.divide_by"),
    "divide_by_zero.tflite": (lambda: _tflite_with_metadata(
        _meta(normalization={"divide_by": 0, "subtract": 0})), "normalization.divide_by"),
    "subtract_null.tflite": (lambda: _tflite_with_metadata(
        _meta(normalization={"divide_by": 255, "subtract": None})), "normalization.subtract"),
    "normalization_list.tflite": (lambda: _tflite_with_metadata(_meta(normalization=[255, 0])),
                                  "normalization"),
    "output_kind.tflite": (lambda: _tflite_with_metadata(_meta(output={"kind": "softmax"})), "output.kind"),
    "meta_list.onnx": (lambda: _onnx_with_metadata("[]"), "is a JSON list"),
    "quantization_list.onnx": (lambda: _onnx_with_metadata(json.dumps({"input": {"quantization": [1, 0]}})),
                               "input.quantization"),
    "truncated.tflite": (lambda: TFLITE.read_bytes()[:3000], "cannot load it"),
    "cut_short.tflite": (lambda: TFLITE.read_bytes()[:-4], "metadata (the archive appended to the model) is "
                         "damaged"),  # the model itself still loads: only its metadata says it gives logits
    "logits_no_metadata.tflite": (lambda: TFLITE.read_bytes()[:TFLITE.read_bytes().rfind(b"PK\x03\x04")],
                                  "not 10 probabilities"),
    "text.onnx": (lambda: b"not a model", "cannot load it"),
    "empty.tflite": (lambda: b"", "an empty file (0 bytes), expected a .tflite model"),  # the runtime
    "empty.onnx": (lambda: b"", "an empty file (0 bytes), expected a .onnx model"),  # said otherwise
}

DOCTOR_MODELS = sorted(BAD_MODELS)
CAMERA_MODELS = ["out12.onnx", "meta_list.tflite", "divide_by_zero.tflite", "truncated.tflite",
                 "cut_short.tflite"]
COMPARE_CASES = [("threads_text", "rows[0].threads is a str"), ("p50_text", "rows[1].latency_us"),
                 ("size_null", "rows[0].size_bytes is a NoneType"), ("rows_dict", "'rows'"),
                 ("rows_empty", "no rows, nothing to compare"),  # once an empty comparison, exit 0
                 ("missing", "no such file")]

BAD_MANIFESTS = {  # name -> (manifest.json text, what the error line says)
    "files_string": ('{"files": "model_int8.tflite"}', "'files' is a str"),
    "files_list": ('{"files": ["model_int8.tflite"]}', "'files' is a list"),
    "entry_string": ('{"files": {"model_int8.tflite": "abc"}}', "'files' entry"),
    "a_list": ("[1, 2]", "expected a JSON object"),
    "not_json": ("{files:", "not a readable JSON manifest"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    good = _digits_png()
    (d / "good.png").write_bytes(good)
    (d / f"{NON_UTF8}.png").write_bytes(good)
    for name, (data, _) in BAD_IMAGES.items():
        (d / name).write_bytes(good[:60] if data is None else data)
    (d / "models").mkdir()
    for name, (make, _) in BAD_MODELS.items():
        (d / "models" / name).write_bytes(make())
    (d / "models" / f"{NON_UTF8}.tflite").write_bytes(TFLITE.read_bytes())
    # camera: a folder whose bad files sit between good ones, one of them in a non-UTF-8 name
    frames = d / "frames"
    frames.mkdir()
    for i in range(1, 6):
        (frames / f"frame{i}.png").write_bytes(good)
    (frames / "frame1b.png").write_bytes(BAD_IMAGES["bomb.png"][0])
    (frames / "frame2b.jpg").write_bytes(BAD_IMAGES["bomb.jpg"][0])
    (frames / "frame3b.png").write_bytes(b"hello")
    (frames / f"frame4b{NON_UTF8}.png").write_bytes(good)
    # exported folders: malformed manifests, and a killed export (models, no manifest)
    for name, (text, _) in BAD_MANIFESTS.items():
        (d / name).mkdir()
        (d / name / "model_int8.tflite").write_bytes(TFLITE.read_bytes())
        (d / name / "manifest.json").write_text(text)
    (d / "killed").mkdir()
    for f in ("model_fp32.tflite", "model_int8.tflite"):
        (d / "killed" / f).write_bytes((MODELS / f).read_bytes())
    (d / "swapped").mkdir()  # a classifier where the shipped locator's file should be
    for f in ("model_int8.tflite", "locator_int8.tflite"):
        (d / "swapped" / f).write_bytes(TFLITE.read_bytes())
    (d / "empty_dir").mkdir()  # a folder with no model in it
    (d / "cut.keras").write_bytes((MODELS / "model.keras").read_bytes()[:20000])  # a copy cut short
    (d / "corrupt").mkdir()
    (d / "corrupt" / "model_int8.tflite").write_bytes(TFLITE.read_bytes()[:3000])
    (d / "corrupt" / "manifest.json").write_text('{"files": {}}')
    # data: an IDX folder whose training images are a .gz with a corrupt deflate stream
    (d / "idx").mkdir()
    x, y = np.ones((20, 28, 28), np.uint8), (np.arange(20) % 10).astype(np.uint8)
    for name, a in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                    ("t10k-images-idx3-ubyte", x), ("t10k-labels-idx1-ubyte", y)):
        raw = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape) + a.tobytes()
        (d / "idx" / f"{name}.gz").write_bytes(gzip.compress(raw))
    head = gzip.compress(b"x")[:10]  # a valid gzip header, then bytes that are not deflate
    (d / "idx" / "train-images-idx3-ubyte.gz").write_bytes(head + bytes(range(7, 250)))
    # bench --compare: the shipped bench.json, with a value of the wrong type in each
    bench = json.loads((MODELS / "bench.json").read_text())
    for name, (path, value) in {"threads_text": (("rows", 0, "threads"), "one"),
                                "p50_text": (("rows", 1, "latency_us", "p50"), "fast"),
                                "size_null": (("rows", 0, "size_bytes"), None),
                                "rows_dict": (("rows",), {"a": 1}), "rows_empty": (("rows",), [])}.items():
        b = json.loads(json.dumps(bench))
        target = b
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
        (d / f"{name}.json").write_text(json.dumps(b))
    (d / "a_file").write_text("not a folder")
    _bad_datasets(d)
    return d


def _bad_datasets(d: Path) -> None:
    """--data files that once gave a traceback or a hang: an .npz whose x_train header declares 78 GB in a
    member of a kilobyte; one whose deflate stream is corrupt; IDX files whose dimensions overflow int64;
    a FIFO (reading it blocked forever)."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (600, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 600).astype(np.uint8),
              "x_test": rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 100).astype(np.uint8)}
    np.savez_compressed(d / "huge_header.npz", **{k: v for k, v in arrays.items() if k != "x_train"})
    header = np.lib.format.header_data_from_array_1_0(arrays["x_train"][:1])
    header["shape"] = (100_000_000, 28, 28)
    with zipfile.ZipFile(d / "huge_header.npz", "a", zipfile.ZIP_DEFLATED) as z:
        with z.open("x_train.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(1000))
    np.savez_compressed(d / "corrupt_deflate.npz", **arrays)
    data = bytearray((d / "corrupt_deflate.npz").read_bytes())
    data[2000:2200] = bytes(255 - b for b in data[2000:2200])
    (d / "corrupt_deflate.npz").write_bytes(bytes(data))
    (d / "idx_wrap").mkdir()
    dims = {"train-images-idx3-ubyte": (2**31, 2**31, 4), "train-labels-idx1-ubyte": (10,),
            "t10k-images-idx3-ubyte": (10, 28, 28), "t10k-labels-idx1-ubyte": (10,)}
    for name, shape in dims.items():
        head = bytes([0, 0, 8, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape)
        body = bytes(16) if name == "train-images-idx3-ubyte" else bytes(int(np.prod(shape)))
        (d / "idx_wrap" / name).write_bytes(head[:4 + 4 * len(shape)] + body)
    os.mkfifo(d / "fifo.npz")


_RUNS: dict = {}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`cli(*args)`, once per distinct call: the corpus fixture runs them all up front, in parallel."""
    key = (args, cwd)
    if key not in _RUNS:
        _RUNS[key] = cli(*args, cwd=cwd, timeout=120)
    return _RUNS[key]


def image_args(d: Path, name: str) -> tuple:
    return ("predict", str(d / "good.png"), str(d / name))


def model_args(d: Path, cmd: str, name: str) -> tuple:
    source = (str(d / "good.png"),) if cmd == "predict" else ("--source", str(d / "frames"))
    return (cmd, "--model", str(d / "models" / name), *source)


def manifest_args(d: Path, cmd: str, name: str) -> tuple:
    return (cmd, "--model" if cmd == "doctor" else "--artifacts", str(d / name))


def compare_args(d: Path, name: str) -> tuple:
    return ("bench", "--compare", str(MODELS / "bench.json"), str(d / f"{name}.json"),
            "--out", str(d / f"compare_{name}"))


def shipped(text: str, d: Path) -> str:
    """A FLAGS string with its place-holders filled: A_FILE, SHIPPED/ (models/), CORPUS/ (the corpus)."""
    for hold, path in (("A_FILE", d / "a_file"), ("SHIPPED/", f"{MODELS}/"), ("CORPUS/", f"{d}/")):
        text = text.replace(hold, str(path))
    return text


def flag_args(d: Path, cmd: str, args: list[str]) -> tuple:
    args = [shipped(a, d) for a in args]
    extra = {"camera": ["--source", str(d / "frames")] if "--source" not in args else [],
             "predict": [str(d / "good.png")],
             "bench": ["--artifacts", str(MODELS)] if "--compare" not in args else []}.get(cmd, [])
    return (cmd, *extra, *args)


@pytest.fixture(scope="module")
def runs(corpus):
    """Every plain command of the corpus, run 4 at a time (each is mostly start-up)."""
    d = corpus
    calls = [image_args(d, n) for n in BAD_IMAGES]
    calls += [model_args(d, "predict", n) for n in BAD_MODELS]
    calls += [model_args(d, "camera", n) for n in CAMERA_MODELS]
    calls += [manifest_args(d, c, n) for c in ("doctor", "bench") for n in BAD_MANIFESTS]
    calls += [compare_args(d, n) for n, _ in COMPARE_CASES]
    calls += [flag_args(d, c, a) for c, a, _ in FLAGS]
    calls += [("camera", "--source", str(d / n)) for n in BAD_IMAGES]
    calls += [("doctor", "--model", str(d / "models" / n)) for n in DOCTOR_MODELS]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda a: run(*a, cwd=d), calls))
    return d


def one_error(r: subprocess.CompletedProcess, cmd: str, *names: str, code: int = 2) -> str:
    """Exit `code`, exactly one error line (naming each of `names`), no traceback."""
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith(f"mnist-edge {cmd}: error: "), errors[0]
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


def no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*") if p.name.endswith(".tmp")], "a temporary file was left"


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_predict_bad_image(runs, name):
    corpus = runs
    r = run(*image_args(corpus, name), cwd=corpus)
    one_error(r, "predict", f"{corpus / name}: ", BAD_IMAGES[name][1])
    assert r.stdout.startswith(f"{corpus / 'good.png'}: ")  # the good image before it was read



def test_predict_reads_the_other_images_past_one_it_cannot_decode(corpus):
    """An image that passes the header check and fails to decode stopped predict there: the images
    after it were never read. Now each is read, and the one error line names what was not."""
    a, b = corpus / "truncated.png", corpus / "garbage.jpg"
    r = cli("predict", "--json", str(a), str(corpus / "good.png"), str(b), str(corpus / "good.png"),
            timeout=60)
    one_error(r, "predict", f"2 of 4 images could not be read: {a}: cannot decode it", f"; {b}: cannot")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    good = str(corpus / "good.png")
    assert [line["file"] for line in lines] == [str(a), good, str(b), good]
    assert "cannot decode it" in lines[0]["error"] and "cannot decode it" in lines[2]["error"]
    assert lines[1]["reading"] == lines[3]["reading"] != ""
    r = cli("predict", str(corpus / "good.png"), str(a), timeout=60)  # one: its own line, as before
    one_error(r, "predict", f"{a}: cannot decode it")
    assert r.stdout.startswith(f"{good}: ")

def test_predict_reads_the_other_images_past_one_that_is_no_image(corpus):
    """An empty file or one that is no image (its header) stopped the whole batch before any was
    read, where a file that does not decode did not: `predict photos/*` lost every reading to one
    stray file. Now each such file is named at the end, after the others are read."""
    good, empty, notes = (str(corpus / n) for n in ("good.png", "empty.jpg", "notes.png"))
    r = cli("predict", "--model", "missing.tflite", empty, notes, timeout=60)  # no image at all: said
    one_error(r, "predict", f"2 of 2 images could not be read: {empty}: an empty file (0 bytes)")  # before
    assert r.stdout == ""  # the model is looked for (a missing one would be the error otherwise)
    r = cli("predict", "--json", good, empty, notes, good, timeout=60)
    one_error(r, "predict", f"2 of 4 images could not be read: {empty}: an empty file (0 bytes)",
              f"; {notes}: not an image file")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["file"] for line in lines] == [good, empty, notes, good]
    assert lines[0]["reading"] == lines[3]["reading"] != "" and "error" in lines[1] and "error" in lines[2]


def test_predict_non_utf8_name_is_read(corpus):
    r = cli("predict", "--json", str(corpus / "good.png"), str(corpus / f"{NON_UTF8}.png"), timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    good, bad = map(json.loads, r.stdout.splitlines())
    assert bad["file"].endswith("bad\\xffname.png"), bad
    assert {k: v for k, v in bad.items() if k != "file"} == {k: v for k, v in good.items() if k != "file"}


def test_predict_missing_and_folder_are_one_line(corpus):
    one_error(cli("predict", str(corpus / "missing.png"), timeout=60), "predict", "missing.png: no such file")
    one_error(cli("predict", "/dev/null", timeout=60), "predict", "/dev/null: not a regular file")
    one_error(cli("predict", str(corpus), timeout=60), "predict", f"{corpus}: a folder, expected an image")


def test_camera_reads_past_bad_frames(corpus):
    r = cli("camera", "--source", str(corpus / "frames"), timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    records = [json.loads(line) for line in r.stdout.splitlines()]
    files = [rec["file"] for rec in records]
    assert files == ["frame1.png", "frame2.png", "frame3.png", "frame4.png", "frame4bbad\\xffname.png",
                     "frame5.png"], files
    assert len({json.dumps(rec["digits"]) for rec in records}) == 1  # the same image, the same digits
    warnings = [ln for ln in r.stderr.splitlines() if "skipped" in ln]
    assert len(warnings) == 3, r.stderr
    for bad, what in (("frame1b.png", "declares 60000x60000"), ("frame2b.jpg", "declares 60000x60000"),
                      ("frame3b.png", "cannot decode")):
        assert any(bad in w and what in w for w in warnings), (bad, warnings)


def _digit_clip(clip: Path, frames: int) -> Path:
    """An MJPG clip, 320x240, of the digits 0-9 over and over, dark on light paper."""
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(frames):
        frame = np.full((240, 320, 3), 200, np.uint8)
        cv2.putText(frame, str(i % 10), (120, 180), cv2.FONT_HERSHEY_SIMPLEX, 5, (30, 30, 30), 12)
        writer.write(frame)
    writer.release()
    return clip


def _damaged_clips(folder: Path) -> tuple[Path, Path]:
    """A 30-frame clip of digits with frames 10, 11 and 20 (1-based) overwritten with zeros, and the
    same clip cut off after its 15th frame."""
    data = bytearray(_digit_clip(folder / "clip.avi", 30).read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i:i + 3] == b"\xff\xd8\xff"]  # each frame's JPEG
    assert len(starts) == 30
    for k in (9, 10, 19):
        data[starts[k]:starts[k] + 400] = bytes(400)
    (folder / "damaged.avi").write_bytes(bytes(data))
    (folder / "cut.avi").write_bytes(bytes(data[:starts[15]]))
    return folder / "damaged.avi", folder / "cut.avi"


def test_camera_reads_past_damaged_video_frames(tmp_path):
    """A frame of a video file that does not decode is skipped with a warning, and the frames after it
    are read; a file that ends before the frames it declares says so. Neither is an error."""
    damaged, cut = _damaged_clips(tmp_path)
    r = cli("camera", "--source", str(damaged), timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    kept = [i for i in range(30) if i not in (9, 10, 19)]
    assert "".join(ln["reading"] for ln in lines) == "".join(str(i % 10) for i in kept), lines
    assert [ln["frame"] for ln in lines] == kept  # each reading's frame is its number in the file...
    warnings = [ln for ln in r.stderr.splitlines() if "WARNING" in ln]
    assert len(warnings) == 2 and "frames 9-10 could not be decoded; skipped" in warnings[0] \
        and "frame 19 could not be decoded; skipped" in warnings[1], r.stderr  # ...as the warnings' are
    r = cli("camera", "--source", str(cut), timeout=120)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 13, (r.stdout, r.stderr[-2000:])
    assert "ends after 15 of the 30 frames it declares: frames 15-29 could not be decoded" in r.stderr, \
        r.stderr


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_camera_skips_a_bad_image_file(runs, name):
    """The bad file is skipped with a warning that says why; a source with no readable frame at all
    then ends in one error line and exit 2, not a quiet "0 frames" and success."""
    r = run("camera", "--source", str(runs / name), cwd=runs)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout == ""
    warnings = [ln for ln in r.stderr.splitlines() if "skipped" in ln]
    what = BAD_IMAGES[name][1] if any(w in BAD_IMAGES[name][1] for w in ("declares", "empty")) \
        else "cannot decode"  # an empty file says so, as predict says it
    assert len(warnings) == 1 and name in warnings[0] and what in warnings[0], r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"mnist-edge camera: error: --source {runs / name}: "
                                                 "no frame in it could be read"), r.stderr


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("name", sorted(BAD_MODELS))
def test_predict_bad_model(runs, name):
    corpus = runs
    model = corpus / "models" / name
    r = run(*model_args(corpus, "predict", name), cwd=corpus)
    one_error(r, "predict", str(model), BAD_MODELS[name][1])
    assert r.stdout == ""


@pytest.mark.parametrize("name", CAMERA_MODELS)
def test_camera_bad_model(runs, name):
    corpus = runs
    model = corpus / "models" / name
    r = run(*model_args(corpus, "camera", name), cwd=corpus)
    one_error(r, "camera", str(model), BAD_MODELS[name][1])
    assert r.stdout == ""


def test_model_with_non_utf8_name_loads(corpus):
    r = cli("predict", "--model", str(corpus / "models" / f"{NON_UTF8}.tflite"), str(corpus / "good.png"),
            timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.startswith(f"{corpus / 'good.png'}: "), r.stdout


# every broken model fails in every runtime that can take its format (OpenVINO included)
@pytest.mark.parametrize("name", DOCTOR_MODELS)
def test_doctor_reports_a_bad_model(runs, name):
    r = run("doctor", "--model", str(runs / "models" / name), cwd=runs)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"✗ {name}" in r.stdout and "not ready" in r.stdout, r.stdout
    assert "UserError" not in r.stdout, r.stdout  # our own errors read as written, no class name


# ---------------------------------------------------------------- manifests and killed exports


@pytest.mark.parametrize("name", sorted(BAD_MANIFESTS))
@pytest.mark.parametrize("cmd", ["doctor", "bench"])
def test_bad_manifest(runs, cmd, name):
    corpus = runs
    r = run(*manifest_args(corpus, cmd, name), cwd=corpus)
    one_error(r, cmd, str(corpus / name / "manifest.json"), BAD_MANIFESTS[name][1])
    assert not (corpus / name / "bench.json").exists()


def test_killed_export_is_reported(corpus):
    r = cli("doctor", "--model", str(corpus / "killed"), timeout=60)
    assert "Traceback" not in r.stderr and "incomplete export" in r.stdout, r.stdout + r.stderr
    assert "listed in the manifest" not in r.stdout and "no manifest: not checked" in r.stdout
    r = cli("bench", "--artifacts", str(corpus / "killed"), timeout=60)
    one_error(r, "bench", str(corpus / "killed"), "incomplete export")
    assert not (corpus / "killed" / "bench.json").exists()


def test_bench_corrupt_model_is_exit_2(corpus):
    r = cli("bench", "--artifacts", str(corpus / "corrupt"), timeout=60)
    one_error(r, "bench", str(corpus / "corrupt" / "model_int8.tflite"), "cannot load it")
    assert not (corpus / "corrupt" / "bench.json").exists()


# ---------------------------------------------------------------- bench --compare


@pytest.mark.parametrize("name, what", COMPARE_CASES)
def test_compare_wrong_types(runs, name, what):
    corpus = runs
    r = run(*compare_args(corpus, name), cwd=corpus)
    one_error(r, "bench", f"{name}.json", what)
    out = corpus / f"compare_{name}"
    assert not out.exists() or list(out.iterdir()) == []  # nothing written, not even compare.json


# ---------------------------------------------------------------- data


def test_corrupt_gzip_idx(corpus):
    r = cli("train", "--data", str(corpus / "idx"), "--out", str(corpus / "train_out"), timeout=60)
    one_error(r, "train", str(corpus / "idx" / "train-images-idx3-ubyte.gz"), "cannot read IDX file")
    assert not (corpus / "train_out").exists()


# ---------------------------------------------------------------- flags and output paths

FLAGS = [  # (command, args, the flag the line names); the a_file placeholder is an existing file
    ("export", ["--opset", "999"], "--opset 999"),
    ("export", ["--opset", "7"], "--opset 7"),
    ("export", ["--max-drop", "-1"], "--max-drop -1"),
    ("export", ["--max-drop", "nan"], "--max-drop nan"),
    ("export", ["--calib-samples", "3", "--int8"], "--calib-samples 3"),
    ("export", ["--calib-samples", "640"], "--calib-samples: only used for the int8 models; add --int8"),
    ("export", ["--io", "float"], "--io: only used for the int8 models"),
    ("export", ["--per-tensor"], "--per-tensor: only used for the int8 models"),
    ("export", ["--debug"], "--debug: only used for the int8 models"),
    ("export", ["--out", "A_FILE"], "--out"),
    ("export", ["--out", "A_FILE/sub"], "--out"),
    ("export", ["--formats", "tflite,pb"], "--formats"),
    ("export", ["--model", "missing.keras"], "missing.keras"),
    ("export", ["--calib-samples", "-1"], "--calib-samples -1"),
    ("export", ["--opset", "0"], "--opset 0"),
    ("export", ["--opset", "19"], "--opset 19"),
    ("export", ["--formats", ","], "--formats"),
    ("export", ["--io", "int4"], "--io: invalid choice"),
    ("export", ["--calib-method", "magic"], "--calib-method: invalid choice"),
    ("export", ["--max-drop", "inf"], "--max-drop inf"),
    ("train", ["--out", "A_FILE"], "--out"),
    ("train", ["--epochs", "0"], "--epochs 0"),
    ("train", ["--epochs", "-3"], "--epochs -3"),
    ("train", ["--batch-size", "0"], "--batch-size 0"),
    ("train", ["--val-size", "-1"], "--val-size -1"),
    ("train", ["--dropout", "1"], "--dropout 1.0"),
    ("train", ["--dropout", "nan"], "--dropout nan"),
    ("train", ["--arch", "baseline", "--dropout", "0.1"], "--dropout 0.1: sets a new edge model's"),
    ("train", ["--init", "SHIPPED/model.keras", "--dropout", "0"], "--init's model keeps its own"),
    ("train", ["--out", "A_FILE/sub"], "--out"),
    ("train", ["--data", "missing.npz"], "missing.npz: no such file"),
    ("train", ["--data", "A_FILE"], "A_FILE: not an .npz file (no zip signature"),
    ("bench", ["--data", "A_FILE"], "A_FILE: not an .npz file (no zip signature"),
    ("train", ["--arch", "resnet"], "--arch: invalid choice: 'resnet'"),
    ("train", ["--init", "missing.keras"], "--init missing.keras: no such file"),
    ("train", ["--desk-scenes", "5", "--desk-locator", "nope.tflite"], "--desk-locator nope.tflite: no such"),
    ("train", ["--desk-scenes", "5", "--desk-locator", "CORPUS/empty_dir"],
     "--desk-locator CORPUS/empty_dir: a folder, expected a file"),
    ("train", ["--desk-scenes", "5", "--desk-locator", "SHIPPED/model_int8.tflite"],
     "--desk-locator SHIPPED/model_int8.tflite: not a digit locator"),
    ("predict", ["--locator", "SHIPPED/model_int8.onnx"],
     "--locator SHIPPED/model_int8.onnx: not a digit locator"),
    ("predict", ["--model", "CORPUS/swapped/model_int8.tflite"],
     "the shipped locator CORPUS/swapped/locator_int8.tflite: not a digit locator"),
    ("camera", ["--fps", "nan"], "--fps nan"),
    ("camera", ["--fps", "-1"], "--fps -1"),
    ("camera", ["--serve", ""], "--serve ''"),
    ("camera", ["--serve", "host:99999"], "--serve host:99999"),
    ("camera", ["--threads", "0"], "--threads 0"),
    ("camera", ["--threads", "100000"], "--threads 100000: expected 1 to 64"),  # once a crash (SIGSEGV)
    ("camera", ["--fps", "1e-300"], "--fps 1e-300: expected 0"),  # once a traceback (wait overflowed)
    ("camera", ["--max-frames", "0"], "--max-frames 0"),
    ("camera", ["--min-confidence", "nan"], "--min-confidence nan"),
    ("camera", ["--max-retries", "-2"], "--max-retries -2"),
    ("camera", ["--source", "missing_folder"], "--source missing_folder"),
    ("camera", ["--source", ""], "--source ''"),
    ("camera", ["--source", "  "], "--source '  '"),
    ("camera", ["--fps", "inf"], "--fps inf"),
    ("camera", ["--mqtt-interval", "nan"], "--mqtt-interval nan"),
    ("camera", ["--mqtt-interval", "-1"], "--mqtt-interval -1"),
    ("camera", ["--device-id", "pi-a"], "--device-id pi-a: only used when publishing; add --mqtt URL"),
    ("camera", ["--mqtt-interval", "30"], "--mqtt-interval 30: only used when publishing"),  # once ignored
    ("camera", ["--no-discovery"], "--no-discovery: only used when publishing"),
    ("camera", ["--mqtt-interval", "60"], "--mqtt-interval 60: only used when publishing"),  # the default
    ("camera", ["--device-id", ""], "--device-id '': only used when publishing"),
    ("bench", ["--compare", "A_FILE", "--device-id", "pi-a"], "--device-id pi-a: only used when publishing"),
    ("bench", ["--compare", "A_FILE", "--quick"], "--quick: not used with --compare, which measures nothing"),
    ("bench", ["--compare", "A_FILE", "--runs", "5"], "--runs: not used with --compare"),
    ("bench", ["--runtimes", ""], "--runtimes '': expected a comma list of keras, litert"),
    ("bench", ["--runtimes", " , "], "--runtimes ' , ': expected a comma list"),
    ("camera", ["--threads", "-1"], "--threads -1"),
    ("camera", ["--min-confidence", "2"], "--min-confidence 2"),
    ("camera", ["--max-frames", "-5"], "--max-frames -5"),
    ("camera", ["--serve", "abc"], "--serve abc"),
    ("camera", ["--serve", ":"], "--serve :"),
    ("camera", ["--serve", "[::1]:99999"], "--serve [::1]:99999"),
    ("camera", ["--runtime", "tensorrt"], "--runtime tensorrt"),
    ("camera", ["--model", "A_FILE"], "expected a .tflite or .onnx"),
    ("camera", ["--threads", "two"], "--threads: invalid int value"),
    ("camera", ["--model", "missing.tflite"], "--model missing.tflite"),
    ("predict", ["--min-confidence", "1.5"], "--min-confidence 1.5"),
    ("predict", ["--runtime", "tensorrt"], "--runtime tensorrt"),
    ("predict", ["--min-confidence", "nan"], "--min-confidence nan"),
    ("predict", ["--min-confidence", "-0.1"], "--min-confidence -0.1"),
    ("predict", ["--model", "missing.onnx"], "--model missing.onnx"),
    ("predict", ["--model", "SHIPPED/model_int8.tflite", "--runtime", "onnxruntime"],
     "--runtime onnxruntime cannot run model_int8.tflite"),  # (without --model it takes the .onnx)
    ("bench", ["--max-drop", "-1"], "--max-drop -1"),
    ("bench", ["--min-acc", "2"], "--min-acc 2"),
    ("bench", ["--threads", "x"], "--threads x"),
    ("bench", ["--runs", "0"], "--runs 0"),
    ("bench", ["--device-id", "pi-a"], "--device-id pi-a: only used when publishing; add --mqtt URL"),
    ("bench", ["--runs", "-1"], "--runs -1"),
    ("bench", ["--batch", "0"], "--batch 0"),
    ("bench", ["--repeats", "0"], "--repeats 0"),
    ("bench", ["--min-seconds", "-1"], "--min-seconds -1"),
    ("bench", ["--min-acc", "nan"], "--min-acc nan"),
    ("bench", ["--max-drop", "nan"], "--max-drop nan"),
    ("bench", ["--threads", "0"], "--threads 0"),
    ("bench", ["--min-seconds", "nan"], "--min-seconds nan: expected a finite number"),  # once accepted
    ("bench", ["--threads", "1,100000"], "--threads 1,100000: expected integers from 1 to 64"),
    ("bench", ["--threads", ","], "--threads"),
    ("bench", ["--threads", "1,1"], "--threads 1,1: 1 is given twice"),  # once measured once, silently
    ("bench", ["--threads", "all,2,all"], "--threads all,2,all: all is given twice"),
    ("bench", ["--artifacts", "missing_dir"], "missing_dir: no such folder"),
    ("bench", ["--artifacts", "A_FILE"], "--artifacts A_FILE: a file, expected a folder"),
    ("bench", ["--out", "A_FILE"], "--out A_FILE: a file is there"),  # before measuring, not after
    ("bench", ["--out", "A_FILE/sub"], "--out A_FILE/sub"),
    ("predict", ["--model", "CORPUS/empty_dir"], "--model CORPUS/empty_dir: a folder, expected a file"),
    ("predict", ["--locator", "CORPUS/empty_dir"], "--locator CORPUS/empty_dir: a folder, expected a file"),
    ("doctor", ["--model", "missing_dir"], "--model missing_dir"),
    ("train", ["--init", "CORPUS/empty_dir"], "--init CORPUS/empty_dir: a folder, expected a file"),
    ("train", ["--lr", "nan"], "--lr nan: expected a finite number above 0"),  # once trained a model of nans
    ("train", ["--lr", "0"], "--lr 0"),
    ("train", ["--seed", "-1"], "--seed -1: expected a whole number from 0"),  # once a traceback
    ("export", ["--seed", "4294967296"], "--seed 4294967296"),
    ("locator", ["--lr", "nan"], "--lr nan"),
    ("locator", ["--seed", "-1"], "--seed -1"),
    ("locator", ["--workers", "0"], "--workers 0"),
    ("locator", ["--width", "1000"], "--width 1000"),
    ("train", ["--out", "o" * 300], "not a usable folder name"),  # once a traceback (name too long)
    ("train", ["--data", "CORPUS/huge_header.npz"], "x_train.npy declares shape (100000000, 28, 28)"),
    ("train", ["--data", "CORPUS/corrupt_deflate.npz"], "corrupt_deflate.npz: not a readable .npz file"),
    ("train", ["--data", "CORPUS/idx_wrap"], "(32 bytes, header says 18446744073709551632)"),
    ("train", ["--data", "CORPUS/fifo.npz"], "fifo.npz: not a regular file"),  # once blocked forever
    ("bench", ["--compare", "CORPUS/empty_dir"], "CORPUS/empty_dir: a folder, expected a file"),
    # Keras said "File not found" for these, after making the output folder and its log
    ("export", ["--model", "CORPUS/cut.keras"], "CORPUS/cut.keras: not a .keras file"),
    ("train", ["--init", "CORPUS/cut.keras"], "--init CORPUS/cut.keras: not a .keras file"),
    ("locator", ["--init", "CORPUS/cut.keras"], "--init CORPUS/cut.keras: not a .keras file"),
    ("export", ["--out", "/proc/mnist-edge"], "--out /proc/mnist-edge: "),  # as root: 'cannot make a
    ("train", ["--out", "/proc/x/y"], "--out /proc/x/y: "),  # folder there' (a traceback before)
    ("train", ["--desk-scenes", "9", "--desk-locator", "A_FILE"], "--desk-locator A_FILE: expected a"),
    ("predict", ["--locator", "A_FILE"], "--locator A_FILE: expected a .tflite or .onnx model"),
    ("predict", ["--locator", "SHIPPED/locator_int8.onnx", "--runtime", "litert"], "error: --runtime litert"),
]


@pytest.mark.parametrize("cmd, args, names", FLAGS, ids=[f"{c} {' '.join(a)}" for c, a, _ in FLAGS])
def test_bad_flag(runs, cmd, args, names):
    corpus = runs
    r = run(*flag_args(corpus, cmd, args), cwd=corpus)
    one_error(r, cmd, shipped(names, corpus))
    assert r.stdout == ""
    assert (corpus / "a_file").read_text() == "not a folder"  # nothing written over it
    assert not (corpus / "artifacts").exists()  # export and train wrote nothing
    if cmd in ("export", "train"):  # refused before TensorFlow was imported, not after the work
        lines = [line for line in r.stderr.lower().splitlines() if "lite xnnpack delegate" not in line]
        assert "tensorflow" not in "\n".join(lines)  # LiteRT's own line is not TensorFlow's
    no_temp_files(corpus)


# ---------------------------------------------------------------- output that goes away


def test_closed_pipe_is_a_quiet_end(corpus):
    for cmd in (["predict", str(corpus / "good.png"), str(corpus / "good.png")],
                ["camera", "--source", str(corpus / "frames")]):
        p = subprocess.Popen([str(EXE), *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.readline()
        p.stdout.close()  # `| head -1`
        err = p.stderr.read()
        assert p.wait(timeout=60) == 0, err
        assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("cmd", ["predict", "camera", "doctor"])
def test_full_disk_is_one_line(corpus, cmd):
    args = {"predict": [str(corpus / "good.png")], "camera": ["--source", str(corpus / "frames")],
            "doctor": []}[cmd]
    with open("/dev/full", "w") as full:
        p = subprocess.run([str(EXE), cmd, *args], stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=60)
    one_error(p, cmd, "cannot write to stdout", code=1)


@pytest.mark.parametrize("cmd", [["predict", "GOOD"], ["doctor"], ["--version"], ["--help"]])
def test_closed_stdout_is_one_line(corpus, cmd):
    """Started with stdout closed (`>&-`): Python has no sys.stdout, and nothing could be written."""
    argv = [str(corpus / "good.png") if a == "GOOD" else a for a in cmd]
    p = subprocess.run([str(EXE), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       timeout=60, preexec_fn=lambda: os.close(1))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and "error: stdout is closed" in p.stderr, p.stderr


def test_camera_runs_with_stdout_closed(corpus):
    """camera's readings may go to MQTT or its page alone: a closed stdout is not a mistake there."""
    p = subprocess.run([str(EXE), "camera", "--source", str(corpus / "frames")], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1))
    assert p.returncode == 0 and "Traceback" not in p.stderr and "error" not in p.stderr, p.stderr[-2000:]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("cmd", [["--version"], ["--help"], ["predict", "--help"]])
def test_version_and_help_on_a_full_or_closed_stdout(cmd):
    with open("/dev/full", "w") as full:
        p = subprocess.run([str(EXE), *cmd], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "cannot write to stdout (No space left on device)" in p.stderr, p.stderr
    # a reader that went away before the text was written (`(sleep 1; mnist-edge --version) | true`)
    r, w = os.pipe()
    os.close(r)
    p = subprocess.run([str(EXE), *cmd], stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(w)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_an_unknown_log_level_is_one_line(corpus):
    p = subprocess.run([str(EXE), "predict", str(corpus / "good.png")], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "MNIST_EDGE_LOG": "bogus"})
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert p.stderr == ("mnist-edge predict: error: MNIST_EDGE_LOG='bogus': expected one of DEBUG, INFO, "
                        "WARNING, ERROR, CRITICAL\n"), p.stderr
    p = subprocess.run([str(EXE), "predict", str(corpus / "good.png")], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "MNIST_EDGE_LOG": "warning"})
    assert p.returncode == 0 and p.stdout and "INFO" not in p.stderr, p.stderr
    p = subprocess.run([str(EXE), "predict", str(corpus / "good.png")], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "MNIST_EDGE_LOG": "warn"})  # logging's alias
    assert p.returncode == 0 and p.stdout and "INFO" not in p.stderr, p.stderr


# ---------------------------------------------------------------- live page


def test_live_page_survives_misbehaving_clients():
    from edge.hub import FrameHub
    from edge.web import WebServer

    hub = FrameHub()
    server = WebServer("127.0.0.1", 0, hub, client_timeout=1.0).start()
    port = server.httpd.server_address[1]
    stop = threading.Event()

    def publish():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            hub.publish(rng.integers(0, 255, (480, 640, 3), np.uint8), {"frame": 0})
            time.sleep(0.02)

    def status(path="/stream.mjpg") -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            return c.recv(64).split(b"\r\n")[0]

    threading.Thread(target=publish, daemon=True).start()
    try:
        idle = []
        for _ in range(4):  # viewers that never read: each holds one of the 4 stream slots
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(s)
        time.sleep(0.3)
        assert b"503" in status()  # all slots taken...
        deadline = time.monotonic() + 10
        while b"200" not in status() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"200" in status()  # ...until the idle viewers time out
        half = socket.create_connection(("127.0.0.1", port), timeout=10)
        half.sendall(b"GET / HTT")  # a request never finished is closed by the server
        assert half.recv(100) == b""
        for s in idle:
            s.close()
    finally:
        stop.set()
        server.stop()


def test_camera_page_logs_a_reset_without_traceback(corpus):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([str(EXE), "camera", "--source", str(corpus / "frames"), "--serve", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and p.poll() is None, "the page never came up"
                time.sleep(0.1)
        for request in (b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HT"):
            c.sendall(request)
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.close()
        time.sleep(0.5)
    finally:
        p.send_signal(signal.SIGTERM)
        err = p.stderr.read()
        code = p.wait(timeout=30)
    assert code == 0 and "Traceback" not in err and "ConnectionResetError" not in err, err


# ---------------------------------------------------------------- network sources and signals


def _sigterm(p: subprocess.Popen) -> tuple[int, float]:
    """SIGTERM a running command -> (its exit code, seconds it took to stop)."""
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=30)
    return code, time.monotonic() - t0


def test_sigterm_stops_a_stream_that_never_answers():
    """A server that accepts and says nothing: OpenCV would wait 30 s; SIGTERM ends it at once."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held = []

    def accept():
        while True:
            try:
                held.append(srv.accept())  # and never answer
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    p = subprocess.Popen([str(EXE), "camera", "--source", f"rtsp://127.0.0.1:{port}/live"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not held and time.monotonic() < deadline:  # OpenCV has connected: it waits inside open
            time.sleep(0.05)
        assert held, "OpenCV never connected"
        time.sleep(0.3)
        code, stopped = _sigterm(p)
    finally:
        srv.close()
    err = p.stderr.read()
    assert code == 0 and "Traceback" not in err, err
    assert stopped < 3.0, f"took {stopped:.1f} s to stop (OpenCV's own timeout is 30 s)"


def test_sigterm_stops_a_stream_that_stalls_mid_read():
    """An MJPEG stream that sends three frames and then nothing: SIGTERM ends the blocked read."""
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 255, np.uint8))[1].tobytes()
    part = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n"
                      + part * 3)

    threading.Thread(target=serve, daemon=True).start()
    p = subprocess.Popen([str(EXE), "camera", "--source", f"http://127.0.0.1:{srv.getsockname()[1]}/s.mjpg"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith('{"t"')  # frames came, then the stream went silent
        time.sleep(0.5)
        code, stopped = _sigterm(p)
    finally:
        srv.close()
    err = p.stderr.read()
    assert code == 0 and "Traceback" not in err and "reconnecting" not in err, err
    assert stopped < 3.0, f"took {stopped:.1f} s to stop (OpenCV's own timeout is 30 s)"


def test_video_with_non_utf8_name_is_one_line(tmp_path):
    """OpenCV's video reader segfaults on such a name: refused before it is called."""
    clip = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    w.write(np.zeros((48, 64, 3), np.uint8))
    w.release()
    bad = clip.rename(tmp_path / f"{NON_UTF8}.avi")
    r = cli("camera", "--source", str(bad), timeout=60)
    one_error(r, "camera", "bad\\xffname.avi", "not valid UTF-8")


def test_file_url_ends(corpus, tmp_path):
    clip = _digit_clip(tmp_path / "clip.avi", 12)
    r = cli("camera", "--source", clip.as_uri(), timeout=30)
    assert r.returncode == 0 and "reconnecting" not in r.stderr, r.stderr[-2000:]
    assert len(r.stdout.splitlines()) == 12


def test_sigterm_mid_write_leaves_no_temp_file(tmp_path):
    """The dispatcher's SIGTERM handler unwinds like Ctrl-C, so atomic_path removes its temp file."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from edge.signals import _terminate, Terminated\n"
        "from edge.provenance import atomic_path\n"
        "signal.signal(signal.SIGTERM, _terminate)\n"
        "try:\n"
        f"    with atomic_path(Path({str(tmp_path)!r}) / 'model_int8.tflite') as tmp:\n"
        "        tmp.write_bytes(b'half')\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        tmp.write_bytes(b'whole')\n"
        "except Terminated:\n"
        "    sys.exit(143)\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 143, r.stderr
    assert list(tmp_path.iterdir()) == []
