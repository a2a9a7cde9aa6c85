"""`mnist-edge predict`: MNIST-style 28x28 files, a photo of digits, and unreadable files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmarks.synthetic import make_frame
from edge.classifier import Classifier
from tests.conftest import cli


@pytest.fixture(scope="module")
def images(tmp_path_factory, mnist):
    """Ten MNIST test digits as 28x28 PNGs, each also inverted (black on white), and one photo."""
    d = tmp_path_factory.mktemp("predict")
    picks = [int(np.flatnonzero(mnist.y_test == k)[0]) for k in range(10)]
    for k, i in enumerate(picks):
        cv2.imwrite(str(d / f"digit{k}.png"), mnist.x_test[i])
        cv2.imwrite(str(d / f"inverted{k}.png"), 255 - mnist.x_test[i])
    idx = [picks[2], picks[0], picks[2], picks[6]]
    photo, boxes = make_frame(list(mnist.x_test[idx]), np.random.default_rng(5))
    cv2.imwrite(str(d / "photo.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return d, [mnist.x_test[i] for i in picks], boxes


def test_predict_json(images, exported):
    d, digits, boxes = images
    model = exported[0] / "model_int8.tflite"
    files = [d / f"digit{k}.png" for k in range(10)] + [d / f"inverted{k}.png" for k in range(10)]
    r = cli("predict", "--model", str(model), "--json", "--min-confidence", "0", *map(str, files),
            str(d / "photo.jpg"), timeout=120)  # every digit found, however unsure the tiny model
    assert r.returncode == 0, r.stderr[-2000:]
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["file"] for o in out] == [str(f) for f in files] + [str(d / "photo.jpg")]
    # a 28x28 file is the classifier's input as is: same digit and confidence as in-process
    direct = Classifier(model).classify(np.stack(digits))
    for o, p in zip(out[:10], direct, strict=True):
        assert o["digits"] == [{"digit": p.digit, "confidence": round(p.confidence, 4),
                                "box": [0, 0, 28, 28]}]
    assert [o["digits"] for o in out[10:20]] == [o["digits"] for o in out[:10]]  # polarity undone
    assert sum(o["reading"] == str(k) for k, o in enumerate(out[:10])) >= 8  # even the tiny model
    photo = out[20]
    assert len(photo["digits"]) == 4 and photo["reading"] == "".join(str(x["digit"])
                                                                     for x in photo["digits"])
    for x, (bx, by, bw, bh) in zip(photo["digits"], boxes, strict=True):
        X, Y, W, H = x["box"]
        assert X <= bx + bw / 2 <= X + W and Y <= by + bh / 2 <= Y + H


def test_predict_text_and_min_confidence(images, exported):
    d, _, _ = images
    model = str(exported[0] / "model_int8.tflite")
    r = cli("predict", "--model", model, str(d / "digit7.png"), str(d / "photo.jpg"), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    first, second = r.stdout.splitlines()
    assert first.startswith(f"{d / 'digit7.png'}: ") and "(" in first
    assert second.startswith(f"{d / 'photo.jpg'}: ")
    r = cli("predict", "--model", model, "--min-confidence", "1", str(d / "digit7.png"), timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"{d / 'digit7.png'}: no digits"


@pytest.mark.parametrize("kind, expect", [
    ("missing", "missing.png: no such file"),
    ("text", "notes.png: not an image file OpenCV can read"),
    ("truncated", "truncated.png: cannot decode it as an image"),
])
def test_unreadable_image_is_one_line(tmp_path, images, exported, kind, expect):
    d, _, _ = images
    name = {"missing": "missing.png", "text": "notes.png", "truncated": "truncated.png"}[kind]
    if kind == "text":
        (tmp_path / name).write_text("hello")
    elif kind == "truncated":  # a real PNG header, cut short: only decoding finds out
        png = cv2.imencode(".png", np.zeros((50, 50), np.uint8))[1].tobytes()
        (tmp_path / name).write_bytes(png[:60])
    r = cli("predict", "--model", str(exported[0] / "model_int8.tflite"), str(d / "digit1.png"),
            str(tmp_path / name), timeout=120)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith(f"mnist-edge predict: error: {tmp_path}/{expect}"), errors[0]
    assert "Traceback" not in r.stderr


def test_decoders_own_messages_become_the_projects_lines(tmp_path, images, exported):
    """libpng and libjpeg print to stderr themselves: a PNG cut short gave "libpng error: ..." above
    the error line, and a JPEG with a damaged scan was read in silence but for libjpeg's "Corrupt
    JPEG data". Now the first's reason is in the one error line, the second is a warning naming
    the file, and nothing else reaches stderr."""
    d, _, _ = images
    noise = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)
    png = cv2.imencode(".png", noise)[1].tobytes()
    (tmp_path / "cut.png").write_bytes(png[:len(png) // 2])  # header and part of the pixels
    jpeg = bytearray((d / "photo.jpg").read_bytes())
    middle = len(jpeg) // 2
    jpeg[middle:middle + 20] = b"\x13" * 20  # the scan damaged, the file whole
    (tmp_path / "damaged.jpg").write_bytes(bytes(jpeg))
    r = cli("predict", "--model", str(exported[0] / "model_int8.tflite"), str(tmp_path / "damaged.jpg"),
            str(tmp_path / "cut.png"), timeout=120)
    assert r.returncode == 2
    assert r.stdout.startswith(f"{tmp_path / 'damaged.jpg'}: "), r.stdout  # read as far as it decodes
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith(f"WARNING edge.images: {tmp_path}/damaged.jpg: damaged (Corrupt JPEG data")
    assert lines[1] == (f"mnist-edge predict: error: {tmp_path}/cut.png: cannot decode it as an image "
                        "(PNG input buffer is incomplete; PNG, JPEG, BMP, TIFF, WebP, PNM)")


def test_a_video_or_a_folder_given_to_predict_points_at_camera(tmp_path, images, exported):
    """predict reads image files; camera --source reads videos and folders: the one error line says
    so, with a command that works on that name. A missing one, or a text file, gets no such hint."""
    d, _, _ = images
    clip = tmp_path / "desk clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    (tmp_path / "notes.avi").write_text("not a video")  # a video by its name: camera will say
    model = str(exported[0] / "model_int8.tflite")
    cases = {clip: f"'{clip}'", d: str(d), tmp_path / "notes.avi": str(tmp_path / "notes.avi"),
             tmp_path / "gone.avi": None, tmp_path / "notes.txt": None}
    (tmp_path / "notes.txt").write_text("not an image")
    for path, quoted in cases.items():
        r = cli("predict", "--model", model, str(path), timeout=120)
        lines = r.stderr.splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        if quoted:
            assert lines[0].endswith(f"; for a video or a folder of images: mnist-edge camera --source "
                                     f"{quoted}"), lines[0]
        else:
            assert "camera" not in lines[0], lines[0]


def test_a_file_named_like_an_option_gets_a_hint(tmp_path, images, exported):
    """argparse takes "-7.png" for an unknown option ("arguments are required: IMAGE"): the line
    also says how to pass it; with -- before it the file is read."""
    d, _, _ = images
    (tmp_path / "-7.png").write_bytes((d / "digit7.png").read_bytes())
    model = str(exported[0] / "model_int8.tflite")
    for args in (["-7.png"], [str(d / "digit1.png"), "-7.png"]):
        r = cli("predict", "--model", model, *args, cwd=tmp_path, timeout=120)
        assert r.returncode == 2 and r.stderr.splitlines()[-1].endswith(
            "(-7.png is a file: write ./-7.png, or put -- before the file names)"), r.stderr
    r = cli("predict", "--model", model, "--", "-7.png", cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("-7.png: "), r.stderr
    r = cli("predict", "--model", model, "--bogus", str(d / "digit1.png"), cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "unrecognized arguments: --bogus (" in r.stderr.splitlines()[-1]
    for argv in (("camera", "--source", "-7.png"), ("predict", "--model", "-7.png", "x.png")):
        r = cli(*argv, cwd=tmp_path, timeout=120)  # a flag's value: -- does not help there
        assert r.returncode == 2 and r.stderr.splitlines()[-1].endswith(
            "(-7.png is a file: write ./-7.png)"), r.stderr


def test_runtime_notice_is_kept_off_the_terminal(images, exported):
    """LiteRT says "Created ... XNNPACK delegate" from C++ on every first load: predict's stderr is
    the user's errors only."""
    d, _, _ = images
    r = cli("predict", "--model", str(exported[0] / "model_int8.tflite"), str(d / "digit7.png"),
            timeout=120)
    assert r.returncode == 0 and r.stdout.startswith(str(d / "digit7.png")), r.stderr
    assert "XNNPACK" not in r.stderr and r.stderr.strip() == "", r.stderr


def test_transparent_canvases_read_as_drawn(tmp_path, images):
    """A digit drawn on a transparent canvas lives in the alpha channel only (black or white
    strokes over transparent pixels of the same colour): read as drawn, where OpenCV's colour decode
    gave one flat square and "no digits". A photo with transparent margins reads as the photo."""
    from tests.conftest import REPO

    d, digits, _ = images
    files, truth = [], ""
    for k in (3, 5, 8):
        big = cv2.resize(digits[k], (100, 100), interpolation=cv2.INTER_CUBIC)  # 1/3 of the canvas
        alpha = np.zeros((300, 300), np.uint8)
        alpha[100:200, 100:200] = big
        for colour in (0, 255):
            canvas = np.dstack([np.full((300, 300, 3), colour, np.uint8), alpha])
            files.append(tmp_path / f"canvas{k}_{colour}.png")
            cv2.imwrite(str(files[-1]), canvas)
            truth += str(k)
    photo = cv2.imread(str(d / "photo.jpg"))
    framed = np.zeros((photo.shape[0] + 80, photo.shape[1] + 80, 4), np.uint8)  # transparent black
    framed[40:-40, 40:-40, :3], framed[40:-40, 40:-40, 3] = photo, 255
    cv2.imwrite(str(tmp_path / "framed.png"), framed)
    model = str(REPO / "models" / "model_int8.tflite")
    r = cli("predict", "--model", model, "--json", *map(str, files), str(d / "photo.jpg"),
            str(tmp_path / "framed.png"), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["reading"] for o in out[:6]] == list(truth)
    assert out[7]["reading"] == out[6]["reading"] and len(out[6]["reading"]) == 4


def _with_exif_orientation(image: np.ndarray, orientation: int, fmt: str) -> bytes:
    """A PNG (an eXIf chunk) or lossless WebP (VP8X, then an EXIF chunk after the image) of `image`
    whose EXIF Orientation tag is `orientation`, as a phone's."""
    import struct
    import zlib

    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + \
        b"\x00\x00\x00\x00"
    if fmt == "png":
        png = cv2.imencode(".png", image)[1].tobytes()
        chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
        return png[:33] + chunk + png[33:]  # after the signature and IHDR
    h, w = image.shape[:2]
    flags = 0x08 | (0x10 if image.shape[2] == 4 else 0)  # EXIF, alpha
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + \
        (h - 1).to_bytes(3, "little")
    lossless = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    payload = b"WEBP" + vp8x + lossless[12:] + b"EXIF" + struct.pack("<I", len(tiff)) + tiff
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize("fmt", ["png", "webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotation_is_applied_with_or_without_transparency(tmp_path, orientation, fmt):
    """OpenCV turns a colour decode by the file's EXIF orientation but not the alpha-keeping one:
    one transparent pixel must not leave the picture lying on its side or mirrored."""
    from edge.images import read_image

    rng = np.random.default_rng(orientation)
    bgra = rng.integers(0, 256, (20, 40, 4), np.uint8)
    bgra[:, :, 3] = 255
    opaque = tmp_path / f"opaque.{fmt}"
    opaque.write_bytes(_with_exif_orientation(bgra[:, :, :3], orientation, fmt))
    bgra[0, 0, 3] = 0
    clear = tmp_path / f"one clear pixel.{fmt}"
    clear.write_bytes(_with_exif_orientation(bgra, orientation, fmt))
    a, b = read_image(opaque), read_image(clear)  # a: OpenCV's own turn
    assert a.shape == ((20, 40, 3) if orientation < 5 else (40, 20, 3)), "OpenCV no longer applies EXIF"
    assert b.shape == a.shape and (b == a).mean() > 0.99, b.shape  # the clear pixel laid on its background


@pytest.mark.parametrize("hw", [(768, 1024), (1024, 1024), (513, 700)])
def test_a_big_transparent_canvas_without_exif_keeps_its_orientation(tmp_path, hw):
    """Black strokes on transparent black: OpenCV's colour decode is one black square, so nothing in
    it can say how the canvas is turned; only the file's EXIF may turn it."""
    from edge.images import read_image

    canvas = np.zeros((*hw, 4), np.uint8)
    cv2.putText(canvas, "7", (hw[1] // 3, 2 * hw[0] // 3), cv2.FONT_HERSHEY_SIMPLEX, hw[0] / 60,
                (0, 0, 0, 255), max(2, hw[0] // 40))
    f = tmp_path / "seven.png"
    cv2.imwrite(str(f), canvas)
    flat = read_image(f)
    assert flat.shape == (*hw, 3)
    assert np.array_equal(flat[:, :, 0] < 128, canvas[:, :, 3] >= 128)  # the ink where it was drawn


def test_a_big_16_bit_rgba_png_is_flattened_in_bounded_memory(tmp_path):
    """A 138 KB 4096x4096 16-bit RGBA PNG (half transparent) decodes to 128 MB; laying it on its
    background once took 900 MB more (float copies of the whole image). Peak memory of the whole
    predict run, read from the kernel (ru_maxrss), stays near what the decodes themselves hold."""
    import subprocess
    import sys
    from pathlib import Path

    a = np.zeros((4096, 4096, 4), np.uint16)
    a[:, :2048, 3] = 65535
    f = tmp_path / "rgba16.png"
    cv2.imwrite(str(f), a, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    del a
    exe = Path(sys.executable).parent / "mnist-edge"
    code = ("import resource, subprocess, sys;"
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
            "print(r.returncode, peak, repr(r.stdout + r.stderr))")
    out = subprocess.run([sys.executable, "-c", code, str(exe), "predict", "--locator", "none", str(f)],
                         capture_output=True, text=True, timeout=300).stdout.split(" ", 2)
    assert out[0] == "0" and "no digits" in out[2], out
    assert int(out[1]) < 550 * 1024, f"peak {int(out[1]) // 1024} MB"  # KiB; was 900 MB, the decodes ~230


def test_runtime_onnxruntime_without_model_takes_the_shipped_onnx(images):
    """The shipped default is the .tflite; onnxruntime reads no .tflite, so the shipped .onnx is
    its default (it once failed: "--runtime onnxruntime cannot run model_int8.tflite")."""
    d, _, _ = images
    r = cli("predict", "--runtime", "onnxruntime", "--json", str(d / "digit7.png"), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["reading"] == "7"  # onnxruntime ran it, so it was the .onnx
