"""The task's script section (repository, commit, uncommitted diff, installed packages, entry point), so that
a tracked task can be cloned and enqueued to an agent like any other ClearML task.

ClearML's own detection runs inside ``Task.init`` (seconds in a large environment, before the first example)
and checks PyPI for a newer clearml over the network. tracked turns it off there and runs the same detection
(``Task._update_repository``, ClearML 2.1 internals) in a thread of its own from the call's start, without the
version check. The end of a run waits for it only until ``GRACE_S`` after the run started: a run longer than
that never waits; past it, an unfinished detection is stopped (as ClearML's own ``close`` does) and the task
keeps no script section.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clearml import Task

#: Seconds after a run's start until which its end waits for the detection to finish.
GRACE_S = 2.0


class Detection:
    """Repository and package detection for one task, in a daemon thread started at once."""

    def __init__(self, task: Task) -> None:
        self.started = time.monotonic()
        self._task = task
        self._thread = threading.Thread(target=self._detect, name="tracked-repository", daemon=True)
        self._thread.start()

    def _detect(self) -> None:
        with contextlib.suppress(BaseException):  # best effort: a task without a script section is still a run
            from clearml.utilities.check_updates import CheckPackageUpdates

            from ...common.testing import pause_at

            pause_at("repository")  # a test holds the detection here: the end of the run must not wait for it

            CheckPackageUpdates._package_version_checked = True  # no PyPI request tracked was not asked for
            entry = sys.argv[0] if sys.argv and sys.argv[0] else ""
            self._task._calling_filename = os.path.abspath(entry) if entry else None  # type: ignore[assignment]
            self._task._update_repository()

    def settle(self) -> bool:
        """Wait for the detection no later than ``GRACE_S`` after the start; stop it if unfinished. Done?"""
        self._thread.join(max(0.0, self.started + GRACE_S - time.monotonic()))
        if not self._thread.is_alive():
            return True
        with contextlib.suppress(Exception):
            from clearml.utilities.lowlevel.threads import kill_thread

            kill_thread(self._thread)
        return False
