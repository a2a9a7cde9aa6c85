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
that failed after one as stopped, not failed.

camera installs its own handlers, which stop its loop rather than unwind it (`stopping`), and cut
short the waits that could outlast a stop (`cut_short`: a write to a reader that does not read, a
broker that does not answer).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

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


class Cut(BaseException):
    """Ctrl-C or SIGTERM while the main thread waited in `cut_short()`: the wait is cut short. A
    BaseException, as KeyboardInterrupt is: code in the wait (logging, paho) catches Exception."""


_waiting = False  # the main thread is in a `cut_short()` wait: a stop signal raises Cut there, where
#   otherwise it only sets the stop event and the wait goes on (systemd would SIGKILL us). A plain
#   flag: the handler runs in the main thread, and an Event's lock, held by that thread, would deadlock


@contextmanager
def cut_short() -> Iterator[None]:
    """A wait that a stop signal ends with `Cut` (under `stopping`)."""
    global _waiting
    _waiting = True
    try:
        yield
    finally:
        _waiting = False


@contextmanager
def stopping(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` (and end a `cut_short()` wait) for the block; main thread only.

    A signal handler runs in the main thread wherever it is, so it takes no lock: setting the Event
    (whose lock the interrupted thread may hold) or logging there could deadlock. Python writes each
    signal's number to the wakeup pipe; a thread reading it logs and sets `stop`."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def on_signal(signum, _frame):
        global _waiting
        if _waiting:
            _waiting = False  # once: the handling of the cut is not cut again
            raise Cut()

    def watch():
        while data := os.read(wake_r, 64):
            for signum in data:
                if signum in (signal.SIGINT, signal.SIGTERM):
                    log.info("%s: stopping", signal.Signals(signum).name)
                    stop.set()
        os.close(wake_r)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(wake_w)  # the watcher reads the end of the pipe and returns...
        watcher.join(timeout=5)  # ...having said what it read, before the program ends
