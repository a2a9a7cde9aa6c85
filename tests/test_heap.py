"""edge.heap: after keep_freed_memory, a frame-sized block freed and made again is not faulted in
afresh each time (counted by the kernel, in a fresh process each way, glibc's own malloc)."""

import os
import platform
import resource
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
    env = {k: v for k, v in os.environ.items()  # malloc as glibc sets it up by default
           if k != "LD_PRELOAD" and not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    r = subprocess.run([sys.executable, "-c", COUNT, mode], cwd=REPO, capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    n, kept = r.stdout.split()
    return int(n), kept


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_kept_heap_spares_the_page_faults_of_frame_sized_blocks():
    default, _ = _faults("default")
    kept, done = _faults("keep")
    assert done == "True"
    pages = 480 * 640 // resource.getpagesize()  # per block (75 with 4 KiB pages, 18 with 16 KiB)
    assert default > 200 * 2 * pages // 2  # two blocks a round, mapped afresh each time
    assert kept < default / 20, (kept, default)
