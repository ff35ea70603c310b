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
#: Modules whose writes to the streams are ClearML's own (its prints, its loggers' handlers).
_CLEARMLS = ("clearml", "logging", "tracked")
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
    silent when ``quiet``, characters the console cannot show escaped, a closed pipe ignored.

    Made in a thread other than the main one (the task created while the evaluation runs), the evaluation
    prints meanwhile: only that thread's writes, and those from ClearML's code or from a logging handler
    (ClearML's loggers keep this stream), are ClearML's; the evaluation's own go through untouched."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self._stream, self._quiet = stream, quiet
        in_main = threading.current_thread() is threading.main_thread()
        self._owner = None if in_main else threading.get_ident()

    def write(self, text: str) -> int:
        if self._owner is not None and threading.get_ident() != self._owner:
            caller = str(sys._getframe(1).f_globals.get("__name__", ""))
            if not caller.startswith(_CLEARMLS):
                return self._stream.write(text)
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

    In a thread other than the main one (the task created while the evaluation
    runs), the evaluation may change the same things meanwhile: only what
    ClearML itself put in place is undone, and the global generators are
    neither drawn from (``_private_draws``) nor rewound.
    """
    from clearml import Task

    saved_hooks = (sys.excepthook, sys.exit, sys.stdout, sys.stderr)
    in_main = threading.current_thread() is threading.main_thread()
    saved_signals = {s: signal.getsignal(s) for s in _SIGNALS} if in_main else {}
    saved_seed = getattr(Task, "_random_seed", None)
    Task.set_random_seed(None)
    _private_draws()
    saved_random = random.getstate() if in_main else None
    numpy_random = sys.modules.get("numpy.random") if in_main else None
    saved_numpy = numpy_random.get_state() if numpy_random is not None else None
    try:
        yield
    finally:
        # ClearML draws from the global generators while it starts; the user's
        # evaluation must see the same random numbers with or without tracked.
        if saved_random is not None:
            random.setstate(saved_random)
        if numpy_random is not None:
            numpy_random.set_state(saved_numpy)
        if in_main:
            sys.excepthook, sys.exit, sys.stdout, sys.stderr = saved_hooks
        else:
            _undo_clearmls(saved_hooks)
        for sig, handler in saved_signals.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        Task.set_random_seed(saved_seed)


_RANDOM = random.Random()


def _private_draws() -> None:
    """ClearML's ``Task.init`` draws callback handles from the global ``random`` (its only global draw, in
    ``clearml.binding.frameworks``, 2.1): from a generator of its own instead, so that a task made while the
    evaluation runs leaves the evaluation's random numbers as they would be without tracked."""
    frameworks = sys.modules.get("clearml.binding.frameworks")
    if frameworks is not None and getattr(frameworks, "randint", None) is random.randint:
        frameworks.randint = _RANDOM.randint  # type: ignore[attr-defined]


def _clearmls(hook: Any) -> bool:
    owner = getattr(hook, "__self__", None)
    module = type(owner).__module__ if owner is not None else getattr(hook, "__module__", None)
    return isinstance(module, str) and module.startswith("clearml")


def _undo_clearmls(saved: tuple[Any, Any, Any, Any]) -> None:
    """Put back the hooks ClearML replaced (``sys.excepthook``, ``sys.exit``, the streams), leaving any the
    evaluation set meanwhile."""
    excepthook, exit_, stdout, stderr = saved
    if _clearmls(sys.excepthook):
        sys.excepthook = excepthook
    if _clearmls(sys.exit):
        sys.exit = exit_
    if _clearmls(sys.stdout):
        sys.stdout = stdout
    if _clearmls(sys.stderr):
        sys.stderr = stderr


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
