"""The runtime's load notice is dropped from stderr; whatever else is written there at load stays."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, sys
from edge.backends import XNNPACK_NOTICE, _without_notice
print("before", file=sys.stderr, flush=True)
with _without_notice(XNNPACK_NOTICE):
    os.write(2, XNNPACK_NOTICE + b"\\n")
    os.write(2, b"E0000 a real runtime error\\n")
    print("python warning", file=sys.stderr, flush=True)
print("after", file=sys.stderr, flush=True)
os.write(2, XNNPACK_NOTICE + b"\\n")  # outside the block: not ours to drop
"""


def test_only_the_notice_is_dropped():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["before", "E0000 a real runtime error", "python warning", "after",
                                     "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]


CLOSED = """
import os, sys
from edge.backends import XNNPACK_NOTICE, _without_notice
os.close(2)
with _without_notice(XNNPACK_NOTICE):
    print("inside")
print("after")
try:
    os.fstat(2)
    print("fd 2 open")
except OSError:
    print("fd 2 closed")
"""


def test_a_closed_stderr_is_left_closed():
    r = subprocess.run([sys.executable, "-c", CLOSED], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.splitlines() == ["inside", "after", "fd 2 closed"], r
