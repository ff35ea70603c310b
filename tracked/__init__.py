"""tracked: one decorator turns an evaluation function into a ClearML run.

``import tracked`` is cheap: clearml, pandas and numpy are imported when the
first run needs them.
"""

from __future__ import annotations

from ._decorator import tracked_eval
from ._options import Settings
from ._result import EvalResult
from ._warn import TrackedWarning
from .session import Session, SessionError, read_session
from .sinks.clearml import log_metrics

__all__ = [
    "EvalResult",
    "Session",
    "SessionError",
    "Settings",
    "TrackedWarning",
    "log_metrics",
    "read_session",
    "tracked_eval",
]
__version__ = "0.1.0"
