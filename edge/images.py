"""Reading image files: the one function `predict` and the folder source share.

    >>> import cv2, numpy as np, tempfile
    >>> from edge.images import read_image
    >>> path = f"{tempfile.mkdtemp()}/photo.png"; _ = cv2.imwrite(path, np.zeros((48, 64, 3), np.uint8))
    >>> read_image(path).shape                 # HxWx3 uint8 BGR, or ImageError naming the file
    (48, 64, 3)

Files are read as bytes (`np.fromfile` + `cv2.imdecode`), never by name through OpenCV: OpenCV's
path-based readers crash on names that are not valid UTF-8. Before anything is decoded, the size the
file's header declares is checked against `MAX_PIXELS`, so a few bytes claiming 60000x60000 pixels
(a decompression bomb) are refused instead of allocating gigabytes; OpenCV's own decoder is held to
the same limit (set in `edge/__init__.py`) for a size the header check cannot find.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from edge.errors import UserError, missing
from edge.exif import exif_orientation, oriented

MAX_PIXELS = 64 * 2**20  # largest declared width*height decoded (a 48 Mpx phone photo fits)
MAX_BYTES = 256 * 2**20  # largest image file read
HEADER_BYTES = 64 * 1024  # how much of a file is read to find its declared size
FORMATS = "PNG, JPEG, BMP, TIFF, WebP, PNM"

log = logging.getLogger(__name__)


class ImageError(UserError):
    """An image file that cannot be read, is not an image, or declares too many pixels."""


def import_cv2():
    """cv2, with OpenCV's and FFmpeg's own log lines silenced (shown with MNIST_EDGE_LOG=DEBUG): every
    failure they would describe is reported by the project in one line of its own."""
    try:
        import cv2
    except ImportError:
        raise UserError("OpenCV is not installed (pip install 'mnist-edge[camera]')") from None

    if not log.isEnabledFor(logging.DEBUG):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        if "OPENCV_LOG_LEVEL" not in os.environ:
            if hasattr(cv2.utils, "logging"):  # OpenCV 5
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            else:  # OpenCV 4, what numpy 1 installs get (tflite-runtime): 0 is LOG_LEVEL_SILENT
                cv2.setLogLevel(0)
    return cv2


def shown(path: str | os.PathLike) -> str:
    """A file name safe to print: bytes that are not UTF-8 appear as \\xff instead of crashing print."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = struct.unpack(">H", b[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_size(b: bytes) -> tuple[int, int] | None:
    end = "<" if b[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", b[4:8])
        (n,) = struct.unpack(end + "H", b[ifd:ifd + 2])
        found = {}
        for k in range(n):
            e = b[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
            tag, typ = struct.unpack(end + "HH", e[:4])
            if tag in (256, 257):
                found[tag] = struct.unpack(end + ("H" if typ == 3 else "I"), e[8:10 if typ == 3 else 12])[0]
    except struct.error:
        return None
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(b: bytes) -> tuple[int, int] | None:
    tokens: list[bytes] = []
    for line in b[2:].split(b"\n"):
        tokens += line.split(b"#")[0].split()
        if len(tokens) >= 2:
            break
    try:
        return int(tokens[0]), int(tokens[1])
    except (IndexError, ValueError):
        return None


def declared_size(head: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """(format, (width, height) from the header, None if unreadable) or None for an unknown format."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "PNG", struct.unpack(">II", head[16:24]) if head[12:16] == b"IHDR" else None
        if head.startswith(b"\xff\xd8"):
            return "JPEG", _jpeg_size(head)
        if head.startswith(b"BM"):
            w, h = struct.unpack("<ii", head[18:26])
            return "BMP", (abs(w), abs(h))
        if head[:4] in (b"II*\0", b"MM\0*"):
            return "TIFF", _tiff_size(head)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind = head[12:16]
            if kind == b"VP8X":
                return "WebP", (1 + int.from_bytes(head[24:27], "little"),
                                1 + int.from_bytes(head[27:30], "little"))
            if kind == b"VP8L":
                bits = int.from_bytes(head[21:25], "little")
                return "WebP", (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
            if kind == b"VP8 ":
                w, h = struct.unpack("<HH", head[26:30])
                return "WebP", (w & 0x3FFF, h & 0x3FFF)
            return "WebP", None
        if len(head) > 2 and head[0:1] == b"P" and head[1:2] in b"123456":
            return "PNM", _pnm_size(head)
    except struct.error:  # a header cut short
        return "?", None
    return None


def check_header(path: str | os.PathLike, head: bytes) -> None:
    """ImageError when the header declares more than MAX_PIXELS pixels (or no pixels at all)."""
    found = declared_size(head)
    if found is None or found[1] is None:
        return  # unknown or unreadable header: the decoder will say whether it is an image
    fmt, (w, h) = found
    if w * h > MAX_PIXELS:
        raise ImageError(f"{shown(path)}: {fmt} header declares {w}x{h} pixels, more than the "
                         f"{MAX_PIXELS // 2**20} Mpx limit (a decompression bomb, or a corrupt file)")
    if w * h == 0:
        raise ImageError(f"{shown(path)}: {fmt} header declares {w}x{h} pixels (an empty or corrupt file)")


# Signatures of the other formats OpenCV decodes: a file with none of these is not an image.
OTHER_MAGIC = (b"GIF8", b"\x76\x2f\x31\x01", b"#?RADIANCE", b"#?RGBE", b"\x59\xa6\x6a\x95", b"PF\n",
               b"Pf\n", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")


def probe(path: str | os.PathLike) -> None:
    """Cheap checks before a model loads: the file exists, is readable, looks like an image, and the
    size its header declares is sane. Decoding comes later (read_image)."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{shown(path)}: {missing(path, 'an image file')}")
    try:
        with open(p, "rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError as e:
        raise ImageError(f"{shown(path)}: cannot read it ({e.strerror or e})") from None
    if not head:
        raise _empty(path)
    if declared_size(head) is None and not head.startswith(OTHER_MAGIC) and head[4:8] != b"ftyp":
        raise ImageError(f"{shown(path)}: not an image file OpenCV can read (expected {FORMATS})")
    check_header(path, head)


def _empty(path: str | os.PathLike) -> ImageError:
    return ImageError(f"{shown(path)}: an empty file (0 bytes), expected an image ({FORMATS})")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> BGR uint8 HxWx3 (EXIF rotation applied); ImageError naming the file otherwise."""
    cv2 = import_cv2()

    p = Path(path)
    try:
        if not p.is_file():
            raise ImageError(f"{shown(path)}: {missing(path, 'an image file')}")
        if p.stat().st_size > MAX_BYTES:
            raise ImageError(f"{shown(path)}: {p.stat().st_size} bytes, more than the "
                             f"{MAX_BYTES // 2**20} MiB image limit")
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{shown(path)}: cannot read it ({e.strerror or e})") from None
    if not data.size:
        raise _empty(path)
    check_header(path, data[:HEADER_BYTES].tobytes())
    said: list[str] = []
    try:
        image, said = _decode(data, cv2.IMREAD_COLOR)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):  # the decoder's own limit (edge/__init__.py)
            raise ImageError(f"{shown(path)}: declares more than the {MAX_PIXELS // 2**20} Mpx limit "
                             "(a decompression bomb, or a corrupt file)") from None
        raise ImageError(f"{shown(path)}: cannot decode it ({str(e).strip().splitlines()[-1][:120]})") \
            from None
    if image is None:
        why = f"{said[-1]}; " if said else ""
        raise ImageError(f"{shown(path)}: cannot decode it as an image ({why}{FORMATS})")
    if said:
        log.warning("%s: damaged (%s): read as far as it decodes", shown(path), said[0])
    if _may_be_transparent(data[:HEADER_BYTES].tobytes()):
        try:
            flat = flatten_alpha(_decode(data, cv2.IMREAD_UNCHANGED)[0])
        except MemoryError:
            raise ImageError(f"{shown(path)}: {image.shape[1]}x{image.shape[0]} pixels with transparency, "
                             "too many to lay on a background in this device's free memory") from None
        if flat is not None:
            return oriented(flat, exif_orientation(data))  # as the colour decode turned `image`
    return image


def _decode(data: np.ndarray, flags: int) -> tuple[np.ndarray | None, list[str]]:
    """cv2.imdecode, with what its C decoders print straight to stderr (libpng's "libpng error: ...",
    libjpeg's "Corrupt JPEG data: ...") caught and returned as lines, without their library's prefix,
    for the project's own one line. Anything else written to stderr meanwhile (another thread) is
    passed on. With MNIST_EDGE_LOG=DEBUG, or no stderr to catch, the decoders print as they do."""
    cv2 = import_cv2()

    if log.isEnabledFor(logging.DEBUG):
        return cv2.imdecode(data, flags), []
    with _DECODING, tempfile.TemporaryFile() as caught:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, AttributeError, ValueError):  # no stderr at all: nothing to keep clean
            return cv2.imdecode(data, flags), []
        os.dup2(caught.fileno(), 2)
        try:
            image = cv2.imdecode(data, flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode("utf-8", "replace")
    said, other = [], []
    for line in filter(None, text.splitlines()):
        if _OUR_LINE.match(line):
            other.append(line)  # a log line of ours, from another thread
        else:
            said.append(re.sub(r"^lib\w+ (?:error|warning): ", "", line).strip())
    if other:
        print("\n".join(other), file=sys.stderr)
    return image, said


_DECODING = threading.Lock()  # one decode at a time catches stderr: fd 2 is the process's
_OUR_LINE = re.compile(r"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: |mnist-edge ")  # edge/cli.py's format


def _may_be_transparent(head: bytes) -> bool:
    """Does the header say the image has an alpha channel (PNG grey+alpha or RGBA, a PNG tRNS
    chunk, lossless WebP or extended WebP with its alpha flag)?"""
    if head.startswith(b"\x89PNG") and len(head) > 25:
        return head[25] in (4, 6) or b"tRNS" in head
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return head[12:16] == b"VP8L" or (head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x10))
    return False


def flatten_alpha(image: np.ndarray | None) -> np.ndarray | None:
    """A BGRA image (8 or 16 bits) -> BGR uint8 laid on a background. Where under half the image
    is opaque, the opaque part is the ink (a digit drawn on a transparent canvas, often black strokes
    over transparent black, which OpenCV's colour decode turns into one black square): the background
    is white under dark ink, black under light ink. Otherwise the opaque part is the picture (a photo
    with transparent margins) and the background is its median colour. None when nothing is
    transparent.

        >>> import numpy as np
        >>> canvas = np.zeros((4, 4, 4), np.uint8); canvas[1:3, 1:3, 3] = 255   # black strokes only
        >>> flatten_alpha(canvas)[:, :, 0].tolist()
        [[255, 255, 255, 255], [255, 0, 0, 255], [255, 0, 0, 255], [255, 255, 255, 255]]
    """
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        return None
    shift = 8 if image.dtype == np.uint16 else 0  # 16 bits: the high byte, as OpenCV's colour decode
    alpha = image[:, :, 3]
    if alpha.min() >> shift == 255:
        return None
    # Big images in bands of rows, in integers: an 8192x8192 16-bit RGBA PNG once took 3.5 GB here
    step = max(1, int(np.sqrt(alpha.size / 2**20)))  # the background from ~1 Mpx (all of a photo's)
    seen = (alpha[::step, ::step] >> shift) >= 128
    if seen.mean() >= 0.5:
        background = np.median(image[::step, ::step, :3][seen] >> shift, axis=0)
    else:
        dark = not seen.any() or (image[::step, ::step, :3][seen] >> shift).mean() < 128
        background = np.full(3, 255.0 if dark else 0.0)
    background = np.rint(background).astype(np.int32)
    out = np.empty((*alpha.shape, 3), np.uint8)
    rows = max(1, 2**20 // alpha.shape[1])  # ~1 Mpx a band
    for y in range(0, alpha.shape[0], rows):
        band = (image[y:y + rows] >> shift).astype(np.int32)
        a = band[:, :, 3:]
        out[y:y + rows] = (band[:, :, :3] * a + background * (255 - a) + 127) // 255
    return out
