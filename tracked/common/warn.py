"""The one warning category tracked emits, so users can filter or escalate it.

A warning points at the user's code (the line that called the evaluation,
or the line of the evaluation that yielded the value), never into tracked:
that line is where the user can do something about it, and where
``warnings`` filters by module apply.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from types import FrameType


class TrackedWarning(UserWarning):
    """Something went wrong around the evaluation; the evaluation itself went on."""


def warn(message: str, stacklevel: int = 3) -> None:
    """Warn at the user's line; ``stacklevel`` is only used where no user code is on any stack."""
    from .secrets import scrub

    text = f"tracked: {scrub(message)}"
    frame = _user_frame(sys._getframe(1))
    if frame is None and threading.current_thread() is not threading.main_thread():
        # The live thread: the user's code is what the main thread is running (the evaluation's call).
        frame = _user_frame(sys._current_frames().get(threading.main_thread().ident or -1))
    if frame is None:
        warnings.warn(text, TrackedWarning, stacklevel=stacklevel)
        return
    module_globals = frame.f_globals
    warnings.warn_explicit(
        text,
        TrackedWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module_globals.get("__name__", "<unknown>"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


def _user_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame of user code outside tracked's own frames, walking out from ``frame``: user code
    called from inside tracked (a generator's body) counts; frames before any of tracked's do not."""
    inside = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<"):
            filename = os.path.abspath(filename)
        if _ours(filename):
            inside = True
        elif inside and not _machinery(filename):
            return frame
        frame = frame.f_back
    return None


def _ours(filename: str) -> bool:
    return filename.startswith(_folders()[0])


def _machinery(filename: str) -> bool:
    """Frames between tracked and the user: wrapt's, the standard library's (threading, asyncio), frozen ones."""
    if filename.startswith("<"):
        return True
    if filename.startswith(_folders()[1]):  # the standard library's, but not what is installed inside it
        return "site-packages" not in filename and "dist-packages" not in filename
    wrapt = sys.modules.get("wrapt")  # imported at the first decoration, maybe after the first warning
    where = getattr(wrapt, "__file__", None)
    return isinstance(where, str) and filename.startswith(os.path.join(os.path.dirname(os.path.abspath(where)), ""))


@functools.cache
def _folders() -> tuple[str, str]:
    """tracked's folder, then the standard library's (where ``threading`` is)."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
    return here, os.path.join(os.path.dirname(os.path.abspath(str(threading.__file__))), "")
