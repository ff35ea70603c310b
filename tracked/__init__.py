"""tracked: one decorator turns an evaluation function into a ClearML run.

``import tracked`` is cheap: clearml, pandas, numpy and wrapt are imported
when first needed, and so are the session reader and the ClearML helper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._batch import batch
from ._decorator import tracked_eval
from ._options import Settings
from ._result import EvalResult
from ._warn import TrackedWarning

if TYPE_CHECKING:
    from ._merge import MergeError, merge
    from .session import Session, SessionError, read_session
    from .sinks.clearml import log_metrics

__all__ = [
    "EvalResult",
    "MergeError",
    "Session",
    "SessionError",
    "Settings",
    "TrackedWarning",
    "batch",
    "log_metrics",
    "merge",
    "read_session",
    "tracked_eval",
]
__version__ = "0.1.0"

_LAZY = {
    "merge": "_merge",
    "MergeError": "_merge",
    "Session": "session",
    "SessionError": "session",
    "read_session": "session",
    "log_metrics": "sinks.clearml",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tracked' has no attribute {name!r}")
