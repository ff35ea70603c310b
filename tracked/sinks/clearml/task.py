"""The ClearML task a run reports into: created for it, or the one already running, shared.

ClearML has one task per process. Runs that overlap (nested, in threads, in
asyncio tasks) share it: the first reports under plain names, each later one
under its own name as a prefix, and whoever ends last closes the task if
tracked created it. A forked child never writes into its parent's task.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...common.clearml_env import clearml_environ, server_configured, server_unreachable
from ...common.testing import pause_at
from ...common.warn import warn
from .process import FRAMEWORKS, guarded_stdout, process_untouched, quiet_dependencies, restore

if TYPE_CHECKING:
    from clearml import Task

    from ...common.options import Settings
    from .repository import Detection

#: The end of a run waits for the server at most this many ``server_timeout``s (at least 10 s).
SERVER_WAITS = 6


@dataclass
class Shared:
    """A ClearML task and the tracked runs reporting into it right now.

    ClearML has one task per process. Runs that overlap (nested, in threads,
    in asyncio tasks) share it: the first reports under plain names, each
    later one under its own name as a prefix, and whoever ends last closes
    the task if tracked created it.
    """

    task: Task
    created: bool
    active: set[str] = field(default_factory=set)
    #: Every name a run has used in this task: a later run (even once the earlier ones ended) takes a new one.
    used: set[str] = field(default_factory=set)
    offline_before: bool | None = None
    environ_before: dict[str, str] | None = None


_LOCK = threading.RLock()
_SHARED: dict[str, Shared] = {}
#: Tasks this process's parent was reporting into when it forked this process: never ours to write into.
_PARENTS: set[str] = set()


def _after_fork_in_child() -> None:
    global _LOCK, _LAST
    _LOCK = threading.RLock()  # a fork while another thread held it (creating a task) must not deadlock the child
    if _LAST is not None and not _LAST.is_set():  # the parent's task was being made: the child must not touch
        _PARENTS.add("(being made)")  # ClearML (that thread may hold its import's locks), as for a task made
    _LAST = None  # the thread creating the parent's task is not in the child: nothing to wait for
    _PARENTS.update(_SHARED)
    _SHARED.clear()


#: Held while a creation imports ClearML and pandas in the background: a fork waits for it, or its child would find
#: those modules' import locks held for good by a thread it does not have (and hang importing them at its end).
_IMPORTING = threading.Lock()


def _before_fork() -> None:
    if _IMPORTING.acquire(timeout=60):
        _IMPORTING.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class _TaskInit:
    """``Task.init`` for a run, optionally in a thread of its own with a deadline.

    ClearML retries an API call that goes unanswered for hours. Past the
    deadline the run goes on without ClearML (the journal and the local sink
    keep it); should ClearML finish later after all, its task is closed at
    once, so that no later run joins a task nobody reports into.
    """

    def __init__(self, settings: Settings, name: str) -> None:
        self._settings, self._name = settings, name
        self._task: Task | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._done = self._abandoned = False

    def run(self) -> None:
        from clearml import Task

        settings = self._settings
        hooks = (sys.excepthook, sys.exit)
        try:
            self._task = Task.init(
                project_name=settings.project,
                task_name=settings.task_name or self._name,
                task_type=Task.TaskTypes(settings.task_type),
                tags=list(settings.tags) or None,
                output_uri=settings.output_uri,
                **(settings.task_init or {}),
                reuse_last_task_id=False,
                auto_connect_arg_parser=False,
                auto_connect_frameworks=dict.fromkeys(FRAMEWORKS, False),
                auto_resource_monitoring=False,
                auto_connect_streams=False,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by task()
            self._error = exc
        with self._lock:
            self._done = True
            abandoned = self._abandoned
        if abandoned:  # too late: nobody reports into it
            sys.excepthook, sys.exit = hooks
            if self._task is not None:
                with contextlib.suppress(Exception):
                    self._task.mark_failed(status_reason="tracked stopped waiting for the server")
                    self._task.close()

    def within(self, seconds: float) -> None:
        worker = threading.Thread(target=self.run, name="tracked-task-init", daemon=True)
        worker.start()
        worker.join(seconds)
        with self._lock:
            if self._done:
                return
            self._abandoned = True
            self._error = TimeoutError(f"the server did not create the task within {seconds:g} s")

    def task(self) -> Task:
        if self._error is not None:
            raise self._error
        assert self._task is not None
        return self._task


#: The creation started last: the next one waits for it, so that overlapping runs join tasks in the order they began.
_LAST: threading.Event | None = None
_ORDER = threading.Lock()


class Creation:
    """``join`` in a thread of its own, begun with the run: the evaluation scores its first examples while
    ClearML is imported and makes the task (about a second in a fresh process).

    Creations are made in the order runs began (a nested run waits for the outer run's task, and reports into
    it). A run that ends first gives up on its creation (``abandon``); the task made after all is let go at
    once, so that no later run joins a task nobody reports into.
    """

    def __init__(self, settings: Settings, name: str) -> None:
        global _LAST
        # ClearML and pandas import concurrent.futures, which refuses to load once the interpreter is shutting
        # down: a run its exit ends before the task is made still needs them (~10 ms, here rather than then).
        import concurrent.futures.thread  # noqa: F401

        self._settings, self._name = settings, name
        self.shared: Shared | None = None
        self.prefix = ""
        self.folder: str | None = None
        #: The script section's detection, begun as soon as the task is made (``reproducible``).
        self.detection: Detection | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        with _ORDER:
            before, _LAST = _LAST, self.done
        threading.Thread(target=self._run, args=(before,), name="tracked-task", daemon=True).start()

    def _run(self, before: threading.Event | None) -> None:
        try:
            with _IMPORTING:
                import clearml  # noqa: F401
                import pandas  # noqa: F401
        except BaseException:  # noqa: BLE001 - said again by ``join`` below
            pass
        if before is not None:
            before.wait()
        try:
            pause_at("create:ClearMLSink")  # a test holds the creation here: the evaluation must not wait for it
            with quiet_dependencies():
                from clearml import Task

                self.shared, self.prefix = shared, _ = join(self._settings, self._name)
                self.folder = shared.task.get_offline_mode_folder() if Task.is_offline() else None
                if shared.created and self._settings.reproducible:  # at once: it runs while the evaluation goes
                    from .repository import Detection

                    self.detection = Detection(shared.task)
        except BaseException as exc:  # noqa: BLE001 - handed to the run by ``wait``
            self.error = exc
        with self._lock:
            self.done.set()
            abandoned = self._abandoned
        if abandoned:
            self._let_go()

    def wait(self, seconds: float) -> bool:
        """True once the creation has ended (made the task, or failed: ``error``), waiting at most ``seconds``."""
        return self.done.wait(seconds) if seconds > 0 else self.done.is_set()

    def abandon(self) -> bool:
        """The run ended before its task was made: give the task up once it is; False if it was made already."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
            return True

    def _let_go(self) -> None:
        shared = self.shared
        if shared is None or not leave(shared, self.prefix or self._name) or not shared.created:
            return
        with contextlib.suppress(Exception):
            shared.task.mark_failed(status_reason="the run ended before ClearML had made its task")
        with contextlib.suppress(Exception):
            shared.task.close()
        restore(shared.offline_before, shared.environ_before)


def deadline(settings: Settings) -> float:
    """Seconds a server may take to create a task or take a run's report before tracked stops waiting."""
    return max(10.0, SERVER_WAITS * settings.server_timeout)


def join(settings: Settings, name: str) -> tuple[Shared, str]:
    """The task this run reports into, and its prefix there ("" for the first run in it)."""
    if _PARENTS:  # not even importing ClearML: in a fork, its state (and locks, the import's too) are the parent's
        raise RuntimeError(
            f"this process was forked while its parent's evaluation reported into task {min(_PARENTS)}; "
            "a child does not write into its parent's task"
        )
    from clearml import Task

    with _LOCK:
        current: Task | None = Task.current_task()
        if current is None:
            shared = _create(settings, name)
        else:
            shared = _SHARED.setdefault(str(current.id), Shared(task=current, created=False))
        prefix = _unique(name, shared.used) if shared.active else ""
        shared.active.add(prefix or name)
        shared.used.add(prefix or name)
        return shared, prefix


def leave(shared: Shared, key: str) -> bool:
    """This run is done with the task; True when it was the last run in it."""
    with _LOCK:
        shared.active.discard(key)
        last = not shared.active
        if last:
            _SHARED.pop(str(shared.task.id), None)
    return last


def _create(settings: Settings, name: str) -> Shared:
    from clearml import Task

    environ_before, offline_before = clearml_environ(), Task.is_offline()
    offline = settings.offline
    if offline is None:
        offline = not server_configured()
    if not offline:
        problem = server_unreachable(settings.server_timeout)
        if problem:
            warn(f"the configured ClearML server {problem}; writing an offline session instead")
            offline = True
    if offline != offline_before:
        Task.set_offline(offline)
    # The forked reporter costs 1-3 ms per event and ~10 s at close;
    # in-process it is ~25 us and ~0.02 s. Class attribute, read by Task.init.
    Task._report_subprocess_enabled = False  # type: ignore[assignment]
    init = _TaskInit(settings, name)
    try:
        with process_untouched(), guarded_stdout(quiet=not settings.verbose):
            if offline:
                init.run()
            else:  # a server that takes logins but leaves task creation unanswered must not hold the evaluation
                init.within(deadline(settings))
        task = init.task()
    except BaseException:
        restore(offline_before, environ_before)
        raise
    shared = Shared(task=task, created=True, offline_before=offline_before, environ_before=environ_before)
    _SHARED[str(task.id)] = shared
    return shared


def never_wait_at_exit(task: Task) -> None:
    """The server stopped answering: ClearML's exit hooks would wait for it again, for ever.

    Best effort on ClearML's internals (2.1): its task exit hook returns at
    once when it believes another thread ran it, and its reporter stops
    waiting once its "done" event is set. Its sender thread may still hold
    the exit until its own HTTP timeout (README: "When things go wrong").
    What was not sent is in the local save (``saved_to``) and the journal.
    """
    with contextlib.suppress(Exception):
        task._at_exit_called = True
    with contextlib.suppress(Exception):
        task._reporter._report_service._done_ev.set()


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}#{number}"
    return candidate
