"""Named points where a test can stop a run, to kill its process there: timing forced, not hoped for.

``TRACKED_PAUSE_AT=<point>`` makes the first run that reaches that point
write the file ``TRACKED_PAUSE_FILE`` (when set) and wait there for good;
the test sees the file and kills the process (or has another process do
something meanwhile). Points are named after what comes next, e.g.
``start:ClearMLSink`` (before ClearML creates the run's task),
``start:JournalSink`` (the task is made, the journal not yet),
``finish:JournalSink`` (ClearML has reported the final metrics; the journal
has not yet said how the run ended) or ``close:ClearMLSink`` (before
ClearML closes the task and zips the session). Only the first arrival
waits: what the process then does in another thread (a signal's handler
saving the run) passes the point. Unset, a point costs one dictionary
lookup, at the start and the end of a run.
"""

from __future__ import annotations

import os
import threading
import time

_paused = threading.Event()


def pause_at(point: str) -> None:
    """Wait here for good if a test asked to (``TRACKED_PAUSE_AT``), the first time the point is reached."""
    if os.environ.get("TRACKED_PAUSE_AT") != point or _paused.is_set():
        return
    _paused.set()
    marker = os.environ.get("TRACKED_PAUSE_FILE")
    if marker:
        with open(marker, "w", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {point}\n")
    while True:
        time.sleep(3600)
