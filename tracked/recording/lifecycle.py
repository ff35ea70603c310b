"""Runs that end abnormally: SIGTERM or SIGHUP during an evaluation, a process exiting with a run open.

Each ends the run as "stopped" with what was counted, within a bounded
time, and then lets the process go on as it would have without tracked:

- SIGTERM / SIGHUP (where their action is the default one): while a run is
  open, a handler of tracked's own is installed (from the main thread; a
  handler of the user's own is left alone). During a plain or generator
  evaluation running in the main thread it unwinds the evaluation (so its
  ``finally`` blocks run); otherwise (async, lazy, evaluations in other
  threads) it ends every open run from the handler. Then the signal is
  delivered again with its default action: the process ends by it.
- While a run's end is being written, SIGINT, SIGTERM and SIGHUP wait until
  it is written (a second one of them ends the process at once): a
  double Ctrl-C cannot leave half a session.
- At interpreter exit, an exit hook ends the runs still open.
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
from typing import Any, Protocol


class Open(Protocol):
    """An open run, as the exit hook and the signal handler see it."""

    def stop(self) -> None:
        """Finish the run as stopped, now."""
        ...

    def forsake(self) -> None:
        """Leave the run to the process that started it (this one is its fork)."""
        ...


#: Seconds the interpreter's exit (or a signal) waits for open runs to be reported.
EXIT_TIMEOUT_S = 5.0

_open_runs: weakref.WeakSet[Open] = weakref.WeakSet()
_exit_hook_registered = False
_lock = threading.Lock()
#: Signals that end the process by default and that tracked turns into a saved, stopped run.
_ENDING = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)
_HELD = (signal.SIGINT, *_ENDING)
#: Set while a plain or generator evaluation runs in the main thread: a signal unwinds it.
_unwinding = threading.Event()


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a tracked evaluation; delivered again once the run is saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _after_fork_in_child() -> None:
    """A forked child must never write into its parent's runs: it forgets them (and any lock held across the fork)."""
    global _lock
    _lock = threading.Lock()
    runs = list(_open_runs)
    _open_runs.clear()
    for run in runs:
        run.forsake()
    # Signals mean to a child what they mean without tracked (a pool worker dies at once on SIGTERM).
    _unwinding.clear()
    for signum in _ENDING:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def opened(run: Open) -> None:
    global _exit_hook_registered
    with _lock:
        _open_runs.add(run)
        if not _exit_hook_registered:
            atexit.register(_close_open_runs)
            _exit_hook_registered = True
    _install()


def closed(run: Open) -> None:
    with _lock:
        _open_runs.discard(run)
        last = not _open_runs
    if last:
        _uninstall()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install() -> None:
    """tracked's handler for SIGTERM/SIGHUP, where their action is the default (main thread only)."""
    if not _in_main_thread():
        return
    for signum in _ENDING:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_signal)


def _uninstall() -> None:
    """With no run left open, SIGTERM/SIGHUP act as they did before tracked (main thread only: elsewhere the
    handler stays until a later run ends in the main thread, and does what the default would)."""
    if not _in_main_thread():
        return
    for signum in _ENDING:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, signal.SIG_DFL)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _unwinding.is_set():
        raise Terminated(signum)  # unwinds the evaluation; the wrapper saves the run, then redeliver()
    _close_open_runs()
    _die_by(signum)


def _die_by(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _close_open_runs() -> None:
    with _lock:
        runs = list(_open_runs)
    if not runs:
        return

    def close_all() -> None:
        for run in runs:
            run.stop()

    # A daemon thread with a deadline: a stuck ClearML call must not hang the exit.
    worker = threading.Thread(target=close_all, name="tracked-exit", daemon=True)
    worker.start()
    worker.join(EXIT_TIMEOUT_S)


@contextlib.contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While a plain or generator evaluation runs in the main thread, SIGTERM/SIGHUP unwind it."""
    if not _in_main_thread():
        yield
        return
    _install()
    _unwinding.set()
    try:
        yield
    finally:
        _unwinding.clear()
        with _lock:
            last = not _open_runs
        if last:  # the call is over and no other run is open: the process's signals are its own again
            _uninstall()


def redeliver(exc: BaseException) -> None:
    """After the run is saved, let the signal do what it would have done: end the process."""
    if isinstance(exc, Terminated):
        _close_open_runs()  # other threads' runs: saved as stopped, as the handler saves them
        _die_by(exc.signum)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """While a run's end is written: SIGINT/SIGTERM/SIGHUP wait until it is (a second one ends the process)."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if received:  # the user insists: no more waiting
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            _die_by(signum)
        received.append(signum)

    saved: dict[int, Any] = {}
    for signum in _HELD:
        with contextlib.suppress(ValueError, OSError):
            saved[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        with _lock:
            idle = not _open_runs
        for signum, handler in saved.items():
            if handler is None or (handler is _on_signal and idle):  # no run left to save: the default again
                handler = signal.SIG_DFL
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)
        for signum in received:  # now that the run is saved, what the signal meant happens
            os.kill(os.getpid(), signum)
