"""Named points where a test can stop a run, to kill its process there: timing forced, not hoped for.

``TRACKED_PAUSE_AT=<point>`` makes the run that reaches that point write
the file ``TRACKED_PAUSE_FILE`` (when set) and wait there for good; the
test sees the file and kills the process. Points are named after what
comes next, e.g. ``finish:JournalSink`` (ClearML has reported the final
metrics; the journal has not yet said how the run ended) or
``close:ClearMLSink`` (before ClearML closes the task and zips the
session). Unset, a point costs one dictionary lookup, at the end of a run.
"""

from __future__ import annotations

import os
import time


def pause_at(point: str) -> None:
    """Wait here for good if a test asked to (``TRACKED_PAUSE_AT``)."""
    if os.environ.get("TRACKED_PAUSE_AT") != point:
        return
    marker = os.environ.get("TRACKED_PAUSE_FILE")
    if marker:
        with open(marker, "w", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {point}\n")
    while True:
        time.sleep(3600)
