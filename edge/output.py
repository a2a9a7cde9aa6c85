"""Writing results to stdout when the reader may go away or the disk may be full.

    >>> from edge.output import write_line
    >>> if not write_line('{"reading": "42"}'):   # False: the reader closed the pipe (`| head -1`)
    ...     pass                                  # stop quietly
    {"reading": "42"}

A closed pipe is a normal end: the caller stops and the command exits 0 without a traceback. Any
other write error (a full disk, `> /dev/full`) raises `OutputError`, which the `mnist-edge`
dispatcher prints as one line and exit code 1.
"""

from __future__ import annotations

import os
import sys


class OutputError(Exception):
    """stdout (or the given stream) could not be written, for a reason other than a closed pipe."""


def silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit cannot fail a second time."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # AttributeError: no stdout at all (started closed)
        pass


def write_line(line: str, out=None) -> bool:
    """Print one line and flush; False if the reader went away, OutputError on any other failure."""
    out = out or sys.stdout
    try:
        print(line, file=out, flush=True)
        return True
    except BrokenPipeError:
        if out is sys.stdout:
            silence_stdout()
        return False
    except OSError as e:
        if out is sys.stdout:
            silence_stdout()
        name = "stdout" if out is sys.stdout else getattr(out, "name", "output")
        raise OutputError(f"cannot write to {name} ({e.strerror or e})") from None
