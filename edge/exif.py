"""A PNG's or WebP's EXIF orientation, read from the file's bytes, and applied as OpenCV applies it.

    >>> import numpy as np
    >>> from edge.exif import exif_orientation, oriented
    >>> exif_orientation(np.frombuffer(b"\\x89PNG\\r\\n\\x1a\\n", np.uint8))   # no eXIf chunk
    1

OpenCV turns an image by its EXIF orientation when it decodes colour, not when it keeps the alpha
channel; `edge.images.read_image` turns the flattened transparent image with these, so both read
the same way up.
"""

from __future__ import annotations

import struct

import numpy as np


def exif_orientation(data: np.ndarray) -> int:
    """The EXIF Orientation (1-8) of a PNG (its eXIf chunk) or WebP (its EXIF chunk) file's bytes; 1
    when it has none or it cannot be read. (OpenCV applies it when it decodes colour, not when it
    keeps the alpha channel.)"""
    head = data[:16].tobytes()
    if head.startswith(b"\x89PNG"):
        pos, big, tag, skip = 8, True, b"eXIf", 12  # chunks: length, type, data, CRC
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        pos, big, tag, skip = 12, False, b"EXIF", 8  # chunks: type, length, data (padded to even)
    else:
        return 1
    while pos + 8 <= data.size:
        a, b = data[pos:pos + 4].tobytes(), data[pos + 4:pos + 8].tobytes()
        kind, size = (b, int.from_bytes(a, "big")) if big else (a, int.from_bytes(b, "little"))
        if kind == tag:
            return _tiff_orientation(data[pos + 8:pos + 8 + min(size, 65536)].tobytes())
        if kind in (b"IDAT", b"IEND"):  # a PNG's image data: an eXIf after it libpng ignores (a WebP's
            break                        # EXIF chunk comes after its image data)
        pos += size + skip + (0 if big else size % 2)
    return 1


def _tiff_orientation(exif: bytes) -> int:
    """Orientation tag (0x0112) of IFD0 in a TIFF-format EXIF block (an "Exif\\0\\0" prefix allowed)."""
    exif = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    order = {b"MM": ">", b"II": "<"}.get(exif[:2])
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        for i in range(min(count, 512)):
            tag, kind, _, value = struct.unpack_from(order + "HHIH", exif, ifd + 2 + 12 * i)
            if tag == 0x0112 and kind == 3:
                return value if 1 <= value <= 8 else 1
    except (struct.error, TypeError):  # cut short, or neither byte order (order is None)
        pass
    return 1


def oriented(image: np.ndarray, orientation: int) -> np.ndarray:
    """An image as shown under its EXIF orientation, turned as OpenCV's colour decode turns it.

        >>> import numpy as np
        >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
        >>> oriented(a, 6).tolist()                      # 6: turned 90 degrees clockwise
        [[3, 0], [4, 1], [5, 2]]
    """
    if orientation >= 5:  # 5-8: transposed first
        image = image.swapaxes(0, 1)
    flip = {2: (slice(None), slice(None, None, -1)), 3: (slice(None, None, -1), slice(None, None, -1)),
            4: (slice(None, None, -1),), 6: (slice(None), slice(None, None, -1)),
            7: (slice(None, None, -1), slice(None, None, -1)), 8: (slice(None, None, -1),)}.get(orientation)
    return np.ascontiguousarray(image[flip] if flip else image)
