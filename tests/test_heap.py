"""edge.heap: after keep_freed_memory, a frame-sized block freed and made again is not faulted in
afresh each time (counted by the kernel, in a fresh process each way)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

COUNT = """
import resource, sys
import numpy as np
from edge.heap import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):  # warm up: numpy's own first allocations
    np.ones((480, 640), np.uint8)
before = faults()
for _ in range(200):  # two frames alive at once, as a 3x3 median and its difference with the frame
    a = np.ones((480, 640), np.uint8)
    b = a + 1
    del a, b
print(faults() - before, kept)
"""


def _faults(mode: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-c", COUNT, mode], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    n, kept = r.stdout.split()
    return int(n), kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_kept_heap_spares_the_page_faults_of_frame_sized_blocks():
    default, _ = _faults("default")
    kept, done = _faults("keep")
    assert done == "True"  # this machine's C library is glibc
    assert default > 200 * 2 * 75 // 2  # two 300 KiB blocks a round, 75 pages each, mapped afresh
    assert kept < default / 20, (kept, default)
