"""Named points where a test can stop a run, to kill its process there: timing forced, not hoped for.

``TRACKED_PAUSE_AT=<point>`` makes the first run that reaches that point
write the file ``TRACKED_PAUSE_FILE`` (when set) and wait there until the
file is removed (without a file: for good); the test sees the file and
kills the process, has another process (or the evaluation itself) do
something meanwhile, or removes the file to let it go on. Points are named
after what comes next, e.g. ``start:ClearMLSink`` (before the run's ClearML
sink starts), ``create:ClearMLSink`` (in the thread that makes the run's
ClearML task while the evaluation goes),
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
    """Wait here if a test asked to (``TRACKED_PAUSE_AT``), the first time the point is reached: until the
    test removes ``TRACKED_PAUSE_FILE``, or for good."""
    if os.environ.get("TRACKED_PAUSE_AT") != point or _paused.is_set():
        return
    _paused.set()
    marker = os.environ.get("TRACKED_PAUSE_FILE")
    if marker:
        with open(marker, "w", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {point}\n")
        while os.path.exists(marker):
            time.sleep(0.02)
        return
    while True:
        time.sleep(3600)
