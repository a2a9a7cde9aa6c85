"""TensorFlow's own output into a log file, so the terminal shows only the pipeline's progress.

    >>> import logging, os, tempfile
    >>> from pathlib import Path
    >>> from train.tf_logs import to_log_file
    >>> log_file = Path(tempfile.mkdtemp()) / "export.log"
    >>> with to_log_file(log_file):
    ...     _ = os.write(2, b"E0000 node_def_util.cc:682] NodeDef mentions attribute ...\\n")
    >>> log_file.read_text()
    'E0000 node_def_util.cc:682] NodeDef mentions attribute ...\\n'

TensorFlow, LiteRT and the converters write from C++ straight to file descriptor 2 (absl and
oneDNN banners, `NodeDef mentions attribute` lines, "Created TensorFlow Lite XNNPACK delegate"),
and the TFLite converter prints its TensorSpec dumps from Python to stdout; Python warnings go to
sys.stderr. Inside `to_log_file()` descriptor 2 and sys.stderr (and with stdout=True descriptor 1
and sys.stdout) point at the log file, while the handlers of Python's root logger keep writing to
the terminal, so the project's own `logging` lines still show what is happening.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _dup(fd: int) -> int | None:
    try:
        return os.dup(fd)
    except OSError:  # closed (`2>&-`): nothing to keep quiet there, and nothing to give back
        return None


def _flush(*streams) -> None:
    for stream in streams:
        if stream is not None:  # None: Python started with that descriptor closed
            stream.flush()


@contextmanager
def to_log_file(path: str | os.PathLike, stdout: bool = False) -> Iterator[Path]:
    """Descriptor 2 (and 1 when `stdout`) into `path`, written afresh, while the block runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("TensorFlow's own messages: %s", path)
    fds = (1, 2) if stdout else (2,)
    _flush(sys.stdout, sys.stderr)
    saved = {fd: _dup(fd) for fd in fds}
    terminal = None if saved[2] is None else os.fdopen(os.dup(saved[2]), "w", buffering=1,
                                                         errors="backslashreplace")
    swapped = [(h, h.setStream(terminal)) for h in logging.getLogger().handlers
               if terminal and type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.__stderr__)]
    streams = sys.stdout, sys.stderr
    try:
        with open(path, "w", buffering=1, encoding="utf-8", errors="backslashreplace") as sink:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            sys.stderr = sink  # Python warnings; and prints, when stdout goes there too
            if stdout:
                sys.stdout = sink
            try:
                yield path
            finally:
                sys.stdout, sys.stderr = streams
    finally:
        for fd, copy in saved.items():
            if copy is None:
                os.close(fd)  # closed before, closed again
            else:
                os.dup2(copy, fd)
                os.close(copy)
        for handler, stream in swapped:
            handler.setStream(stream)
        if terminal:
            terminal.close()
