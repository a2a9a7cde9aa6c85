"""Ctrl-C and SIGTERM for the `mnist-edge` commands: each unwinds the program, and each is recorded.

    >>> from edge import signals
    >>> with signals.handled():            # what the dispatcher runs a command in
    ...     signals.raise_if_received()    # after a conversion: nothing received, nothing raised
    ...     signals.received() is None
    True

(tests/test_cli.py sends the signals themselves: a swallowed SIGTERM is still `received()`.)

SIGTERM is raised as `Terminated`, a KeyboardInterrupt, so `finally` blocks and atomic writes clean
up as they do on Ctrl-C. Both are recorded too, because the exception they raise does not always
reach the dispatcher: a signal landing in a destructor TensorFlow runs while it converts a model
(ConcreteFunction.__del__) is ignored, as Python ignores exceptions raised in __del__, and one
landing in its graph tracing comes out as a TypeError. `raise_if_received` raises a recorded one
again (called after each conversion, before anything is written), and the dispatcher ends a command
that failed after one as stopped, not failed. camera installs its own handlers, which stop its loop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_received: list[int] = []  # the signals received while `handled()` is in force


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so `finally` blocks and atomic writes clean up."""


def _interrupt(signum, _frame):
    _received.append(signum)
    raise KeyboardInterrupt()


def _terminate(signum, _frame):
    _received.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough
    raise Terminated()


@contextmanager
def handled() -> Iterator[None]:
    """Install the two handlers for the block (main thread only), with a fresh record; restore the
    previous ones after. A signal the process was started ignoring (a job started with `&` from a
    script ignores SIGINT) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {}
    for signum, handler in ((signal.SIGINT, _interrupt), (signal.SIGTERM, _terminate)):
        if signal.getsignal(signum) != signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()


def received() -> signal.Signals | None:
    """The last signal received while `handled()` is in force, if any."""
    return signal.Signals(_received[-1]) if _received else None


def raise_if_received() -> None:
    """Raise again a Ctrl-C (KeyboardInterrupt) or SIGTERM (Terminated) received, in case something
    swallowed the exception its handler raised."""
    if _received:
        raise Terminated() if _received[-1] == signal.SIGTERM else KeyboardInterrupt()
