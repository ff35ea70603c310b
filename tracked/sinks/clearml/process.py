"""Starting ClearML without side effects: undoing what ``Task.init`` does to the user's process beyond the
flags that turn hooks off, and keeping its prints and warnings from breaking or cluttering the run."""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

from ...common.clearml_env import restore_clearml_environ

#: Every key of ``auto_connect_frameworks``: a missing key counts as True,
#: and ``False`` or ``{}`` would leave repository detection (``git status``
#: and a network version check) on.
FRAMEWORKS = (
    "detect_repository", "matplotlib", "tensorflow", "tensorboard", "pytorch", "xgboost", "scikit",
    "fastai", "lightgbm", "hydra", "joblib", "megengine", "catboost", "gradio", "tfdefines",
)  # fmt: skip
_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


@contextlib.contextmanager
def quiet_dependencies() -> Iterator[None]:
    """ClearML's bundled config parser uses pyparsing's old names: about 80 DeprecationWarnings per run
    would land in the user's test suite. Only warnings raised from ClearML's and pyparsing's code are hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(clearml|pyparsing)(\.|$)")
        yield


class _GuardedStream:
    """ClearML's own prints (``ClearML Task: ...``) through a stream that cannot break the run:
    silent when ``quiet``, characters the console cannot show escaped, a closed pipe ignored."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self._stream, self._quiet = stream, quiet

    def write(self, text: str) -> int:
        if not self._quiet:
            from ...common.text import write_safely

            write_safely(self._stream, text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout(quiet: bool) -> Iterator[None]:
    """While ClearML prints (task creation, closing): see ``_GuardedStream``."""
    saved = sys.stdout
    sys.stdout = _GuardedStream(saved, quiet)
    try:
        yield
    finally:
        if isinstance(sys.stdout, _GuardedStream):
            sys.stdout = saved


@contextlib.contextmanager
def process_untouched() -> Iterator[None]:
    """Undo what ``Task.init`` does to the process beyond the flags that turn hooks off.

    Task.init installs sys.excepthook, SIGINT/SIGTERM handlers and its own
    sys.exit, and seeds random/numpy/torch; the user's evaluation must run
    in the process it would have had without tracked.
    """
    from clearml import Task

    saved_hooks = (sys.excepthook, sys.exit, sys.stdout, sys.stderr)
    in_main = threading.current_thread() is threading.main_thread()
    saved_signals = {s: signal.getsignal(s) for s in _SIGNALS} if in_main else {}
    saved_seed = getattr(Task, "_random_seed", None)
    Task.set_random_seed(None)
    saved_random = random.getstate()
    numpy_random = sys.modules.get("numpy.random")
    saved_numpy = numpy_random.get_state() if numpy_random is not None else None
    try:
        yield
    finally:
        # ClearML draws from the global generators while it starts; the user's
        # evaluation must see the same random numbers with or without tracked.
        random.setstate(saved_random)
        if numpy_random is not None:
            numpy_random.set_state(saved_numpy)
        sys.excepthook, sys.exit, sys.stdout, sys.stderr = saved_hooks
        for sig, handler in saved_signals.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        Task.set_random_seed(saved_seed)


def restore(offline_before: bool | None, environ_before: dict[str, str] | None) -> None:
    from clearml import Task

    if offline_before is not None and Task.is_offline() != offline_before:
        if offline_before:
            Task.set_offline(True)
        else:
            _back_online()
    if environ_before is not None:
        restore_clearml_environ(environ_before)


def _back_online() -> None:
    """``Task.set_offline(False)``, without waiting for the server.

    ClearML logs every session in again when going back online, waiting for
    ever on a server that does not answer (the reason the run went offline).
    The flags are set here; the login runs in a daemon thread.
    """
    from clearml.backend_api.session.defs import ENV_OFFLINE_MODE
    from clearml.backend_api.session.session import Session
    from clearml.backend_interface.base import InterfaceBase

    ENV_OFFLINE_MODE.set(False)
    InterfaceBase._offline_mode = False
    Session._offline_mode = False
    threading.Thread(target=Session._make_all_sessions_go_online, name="tracked-online", daemon=True).start()
