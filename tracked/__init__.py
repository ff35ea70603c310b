"""tracked: one decorator turns an evaluation function into a ClearML run.

``import tracked`` is cheap: clearml, pandas, numpy and wrapt are imported
when first needed, and so are the session reader and the ClearML helper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._decorator import tracked_eval
from .common.options import Settings
from .common.result import EvalResult
from .common.warn import TrackedWarning
from .recording.batch import batch

if TYPE_CHECKING:
    from .common.errors import DistributedEvalError, MergeError, SessionError
    from .scaleout.merge import merge
    from .sinks.clearml.report import log_metrics
    from .store.comparing import compare
    from .store.session import Session, read_session

__all__ = [
    "DistributedEvalError",
    "EvalResult",
    "MergeError",
    "Session",
    "SessionError",
    "Settings",
    "TrackedWarning",
    "batch",
    "compare",
    "log_metrics",
    "merge",
    "read_session",
    "tracked_eval",
]
_LAZY = {
    "merge": "scaleout.merge",
    "compare": "store.comparing",
    "DistributedEvalError": "common.errors",
    "MergeError": "common.errors",
    "Session": "store.session",
    "SessionError": "common.errors",
    "read_session": "store.session",
    "log_metrics": "sinks.clearml.report",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the installed package's metadata: the version is in pyproject.toml only
        from .common.meta import version

        return version()
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tracked' has no attribute {name!r}")
