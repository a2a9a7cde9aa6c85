"""Keep freed memory in the process, so a frame's big temporaries cost no page faults.

    >>> from edge.heap import keep_freed_memory
    >>> keep_freed_memory() in (True, False)                        # False where malloc is not glibc's
    True

glibc's malloc gives each block of 128 KiB or more its own mapping and hands it back to the kernel
when it is freed; the next block of that size is mapped afresh and filled with zeros page by page
as it is first written. Reading one 640x480 frame makes dozens of such blocks (OpenCV's and numpy's
outputs: a grey frame is 300 KiB), so the kernel's page faults, not the arithmetic, were much of
their cost: a 3x3 median and a difference with its input took 0.2 ms against 0.09 ms once freed
blocks stayed in the process (this module's test counts the faults). Raising malloc's mapping
threshold (M_MMAP_THRESHOLD) keeps such blocks in its heap, and its trim threshold
(M_TRIM_THRESHOLD) keeps the heap's free top from going back after every frame; the process then
holds on to its peak heap, a few MB when reading frames. Called once by `mnist-edge camera`,
`mnist-edge predict` and the frame benchmark. Another C library (musl, macOS, Windows), or another
malloc put in with LD_PRELOAD (jemalloc, tcmalloc: their own ways of keeping memory), is left as it
is. 32-bit glibc takes a threshold of at most 512 KiB, which still holds a 640x480 grey frame.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLDS = (32 << 20, 512 << 10)  # blocks up to this size come from the heap (a 4K RGB frame
#   is 24 MiB): the first glibc takes (64-bit: up to 32 MiB; 32-bit: up to 512 KiB)
TRIM_THRESHOLD = 128 << 20  # free memory at the heap's top is handed back only beyond this


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks (see the module's text); True if it was set."""
    if not sys.platform.startswith("linux") or os.environ.get("LD_PRELOAD"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc's own symbol: musl has a mallopt that does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = next((t for t in MMAP_THRESHOLDS if mallopt(M_MMAP_THRESHOLD, t) == 1), None)
    if kept is None:
        return False
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    log.debug("malloc keeps freed blocks up to %d KiB", kept >> 10)
    return True
