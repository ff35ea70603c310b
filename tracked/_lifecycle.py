"""Runs that end abnormally: SIGTERM during an evaluation, a process exiting with a run open.

Both end the run as "stopped" with what was counted, within a bounded time,
and then let the process go on as it would have without tracked.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref
from collections.abc import Iterator
from types import FrameType
from typing import Protocol


class Open(Protocol):
    """An open run, as the exit hook sees it."""

    def stop_at_exit(self) -> None: ...


#: Seconds the interpreter's exit waits for open runs to be reported.
EXIT_TIMEOUT_S = 5.0

_open_runs: weakref.WeakSet[Open] = weakref.WeakSet()
_exit_hook_registered = False
_lock = threading.Lock()


class Terminated(BaseException):
    """SIGTERM arrived during a tracked evaluation; re-delivered once the run is saved."""


def opened(run: Open) -> None:
    global _exit_hook_registered
    with _lock:
        _open_runs.add(run)
        if not _exit_hook_registered:
            atexit.register(_close_open_runs)
            _exit_hook_registered = True


def closed(run: Open) -> None:
    with _lock:
        _open_runs.discard(run)


def _close_open_runs() -> None:
    with _lock:
        runs = list(_open_runs)
    if not runs:
        return

    def close_all() -> None:
        for run in runs:
            run.stop_at_exit()

    # A daemon thread with a deadline: a stuck ClearML call must not hang the exit.
    worker = threading.Thread(target=close_all, name="tracked-exit", daemon=True)
    worker.start()
    worker.join(EXIT_TIMEOUT_S)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While the evaluation runs, SIGTERM unwinds it (so the run is saved) instead of killing at once.

    Only where SIGTERM has its default action and only in the main thread:
    a handler of the user's own is left alone.
    """
    install = (
        hasattr(signal, "SIGTERM")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    )
    if install:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def redeliver(exc: BaseException) -> None:
    """After the run is saved, let SIGTERM do what it would have done: end the process."""
    if isinstance(exc, Terminated):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
