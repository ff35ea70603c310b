"""``tracked upload``: offline sessions to the configured ClearML server, checked on arrival.

ClearML's ``import_offline_session`` sends a session; this module makes the
server's task say what the run really was (its status, error, parameter
types), reads it back and compares it with the session (events per metric,
single values, console, artifact), and records which task a session went to,
so that a failed upload is one clear line (exit code 2) and a second upload
makes no second task. See the README's upload section.

Bounded and alone (``guard``): one session's upload is given up after
``(DEADLINE_MULTIPLE + its size in MiB, rounded up) * SERVER_TIMEOUT_S``
(12 x 5 s = 60 s for a small session), its task marked failed, and the rest
of a batch is not attempted; a session being uploaded by another process is
refused in one line. The task is created with the system tag
``tracked-session:<session id>``, so one whose ``tasks.create`` answer was
lost is still found, marked failed, and replaced by the next upload. A
session whose status is not known (its journal ``tracked/0/run.json``
missing or damaged) is refused: no task is made that would say "completed".
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..store.runs import SERVER_TIMEOUT_S, Problems, load_runs
from ..store.session import Session
from .guard import deadline_s, session_lock, within
from .record import noter, recorded
from .server import SESSION_TAG, Server, UploadError
from .verify import SERVER_STATUS, shortfall


def upload(specs: Sequence[str], problems: Problems, out: TextIO) -> None:
    """Send each session with ClearML's import, give its task the run's status, and check what arrived.

    ClearML's ``import_offline_session`` only logs a batch of events the
    server refused, and ends every task completed: each task is read back
    and compared with its session. A session whose upload fell short is one
    line on stderr, its task marked failed, and exit code 2; the session's
    record (``UPLOAD_RECORD``) says which task it went to, so uploading it
    again replaces a failed task and never makes a second one.
    """
    from clearml import Task
    from tqdm import tqdm

    from ..common.clearml_env import server_configured, server_unreachable

    if not server_configured():
        problems.add(
            "no ClearML server is configured (set CLEARML_API_HOST, CLEARML_API_ACCESS_KEY and "
            "CLEARML_API_SECRET_KEY, or run `clearml-init`); nothing was uploaded"
        )
        return
    unreachable = server_unreachable(SERVER_TIMEOUT_S)
    if unreachable:  # ClearML itself would retry for hours
        problems.add(f"the configured ClearML server {unreachable}; nothing was uploaded")
        return
    Task.set_offline(False)
    held = _Held()
    sessions = load_runs(specs, held)
    for message in held.messages:  # a session refused for want of a status says so in its one line
        if not any(_about(message, s.path) for s in sessions if s.status not in (*SERVER_STATUS, "running")):
            problems.add(message)
    try:
        server = Server()
    except Exception as exc:  # noqa: BLE001 - refused credentials and the like: one line, not a traceback
        problems.add(f"cannot log in to the configured ClearML server ({type(exc).__name__}: {_short(exc)})")
        return
    outcomes: dict[str, int] = {"uploaded": 0, "already uploaded": 0, "failed": 0}
    # A bar for a batch of sessions (stderr, only on a terminal); each session's line is written with it lifted.
    bar = tqdm(total=len(sessions), desc="tracked upload", unit="session", disable=None if len(sessions) > 1 else True)
    given_up = False
    try:
        for session in sessions:
            try:
                if given_up:
                    raise UploadError("not attempted: the server stopped answering an earlier session's upload")
                outcome, line = _upload_one(session, server)
            except _Abandoned as exc:
                given_up = True
                outcome, line = "failed", f"{session.path}: {exc}"
            except UploadError as exc:
                outcome, line = "failed", f"{session.path}: {exc}"
            except Exception as exc:  # noqa: BLE001 - one line per session, the others still go
                outcome, line = "failed", f"{session.path}: upload failed ({type(exc).__name__}: {_short(exc)})"
            outcomes[outcome] += 1
            bar.clear()
            if outcome == "failed":
                problems.add(line)
            else:
                print(line, file=out)
            bar.update()
    finally:
        bar.close()
    if len(sessions) > 1:
        counts = ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items() if count)
        print(f"tracked upload: {len(sessions)} sessions: {counts}", file=problems.stream)


#: The status message of a task ``tracked upload`` left incomplete (it is replaced by the next upload).
INCOMPLETE = "tracked upload: incomplete"


class _Held(Problems):
    """The problems of reading the sessions, held back until it is known which sessions they are about."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)


def _about(message: str, path: Path) -> bool:
    """Whether a problem ``load_runs`` wrote (``<path as given>: ...``) is about the session at ``path``."""
    return any(message[i : i + 2] == ": " and Path(message[:i]) == path for i in range(len(message)))


def _upload_one(session: Session, server: Server) -> tuple[str, str]:
    """Upload one session (unless it is there already), alone and within its deadline; (outcome, line)."""
    if session.status == "running":
        raise UploadError("the run is still going; upload it once it has ended")
    if session.status not in SERVER_STATUS:
        raise UploadError(f"upload refused: {_status_unknown(session)}, so how the run ended is not known; "
                          "nothing was uploaded")  # fmt: skip
    with session_lock(session):
        attempt = _Attempt(session, server)
        seconds = deadline_s(session)
        if not within(seconds, attempt.run, name=f"tracked upload {session.id}"):
            attempt.abandoned = True  # the thread left running may not write the record any more
            task_id = attempt.created[-1] if attempt.created else None
            what = f"no end within {seconds:g} s (the server stopped answering)"
            clearml = _first_complaint(attempt.said.getvalue())
            raise _Abandoned(str(_failed(server, noter(session, server.host), task_id, session.id,
                                         f"{what}{f'; ClearML: {clearml}' if clearml else ''}")))  # fmt: skip
        if attempt.error is not None:
            raise attempt.error
        return attempt.outcome


class _Abandoned(UploadError):
    """A session's upload given up at its deadline: the rest of the batch is not attempted."""


class _Attempt:
    """One session's upload, run in a thread of its own (``guard.within``)."""

    def __init__(self, session: Session, server: Server) -> None:
        self.session, self.server = session, server
        self.created: list[str] = []
        self.abandoned = False
        self.said = io.StringIO()
        self.error: BaseException | None = None
        self.outcome = ("failed", "")
        self._note = noter(session, server.host)

    def note(self, **entry: Any) -> None:
        if not self.abandoned:
            self._note(**entry)

    def run(self) -> None:
        try:
            self.outcome = self._upload()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self.error = exc

    def _upload(self) -> tuple[str, str]:
        from clearml import Task

        session, server = self.session, self.server
        earlier = recorded(session, server.host)
        if earlier is not None and earlier.get("task"):
            there = server.task(str(earlier["task"]))
            if there is not None and earlier.get("state") == "uploaded":
                link = server.url(there)
                return (
                    "already uploaded",
                    f"{session.path}: already uploaded -> {there['id']} ({session.status}) {link}",
                )
        # What earlier attempts left half-made (the recorded task, and any whose tasks.create answer never
        # arrived, found by their system tag): replaced, never kept beside the new one. A tagged task an
        # upload finished (from another machine, or whose record was lost) is kept: this one is uploaded.
        tagged = server.tagged(session.id)
        finished = [t for t in tagged if not _half_made(t)]
        if finished and not (earlier and earlier.get("task")):
            there = finished[-1]
            link = server.url(there)
            return "already uploaded", f"{session.path}: already uploaded -> {there['id']} ({session.status}) {link}"
        for task_id in dict.fromkeys([*([str(earlier["task"])] if earlier and earlier.get("task") else []),
                                      *(str(t["id"]) for t in tagged if _half_made(t))]):  # fmt: skip
            with contextlib.suppress(UploadError):  # gone already
                server.call("tasks.delete", task=task_id, force=True)
        self.note(state="uploading", task=None)

        def made(task_id: str) -> None:  # recorded at once: a crash mid-upload leaves the record pointing at it
            self.created.append(task_id)
            self.note(state="uploading", task=task_id)

        with _clearml_quiet(self.said) as said:
            try:
                with _noting_created(made, f"{SESSION_TAG}{session.id}"):
                    imported = Task.import_offline_session(str(session.path))
                if not imported:
                    raise RuntimeError("ClearML's import returned no task")
                task_id = str(imported)
            except Exception as exc:  # noqa: BLE001 - the half-made task is marked below
                # What ClearML logged (the refused request) says more than the exception its internals raised next.
                clearml = _first_complaint(said.getvalue())
                what = f"{type(exc).__name__}: {_short(exc)}"
                raise _failed(server, self.note, self.created[-1] if self.created else None, session.id,
                              f"{clearml} ({what})" if clearml else what) from None  # fmt: skip
            if self.abandoned:
                raise UploadError("given up")
            try:
                _settle(task_id, session, server)
                missing = shortfall(session, task_id, server)
            except UploadError as exc:
                missing = [str(exc)]
            if missing:
                clearml = _first_complaint(said.getvalue())
                reason = f" (ClearML: {clearml})" if clearml else ""
                listed = "; ".join(missing)
                if len(listed) + len(reason) > _WHAT_CHARS:  # the list is cut, never what ClearML was told
                    listed = listed[: max(0, _WHAT_CHARS - len(reason) - 1)] + "…"
                raise _failed(server, self.note, task_id, session.id, listed + reason)
        self.note(state="uploaded", task=task_id, status=session.status)
        return "uploaded", f"{session.path} -> {task_id} ({session.status}) {server.link(task_id)}"


def _status_unknown(session: Session) -> str:
    """Why a session has no status: its journal (``tracked/0/run.json``) missing or damaged, or none at all."""
    from ..store.journal import FOLDER, STATE

    inside = f"{FOLDER}/0/{STATE}"
    try:
        if session.path.is_dir():
            names = [str(p.relative_to(session.path)) for p in (session.path / FOLDER).rglob("*")]
        else:
            with zipfile.ZipFile(session.path) as archive:
                names = [name.split("/", 1)[-1] if not name.startswith(FOLDER) else name for name in archive.namelist()]
    except (OSError, ValueError, zipfile.BadZipFile):
        names = []
    if inside in names:
        return f"its run journal {inside} is damaged (unreadable)"
    if any(name.startswith(f"{FOLDER}/") for name in names):
        return f"its run journal {inside} is missing"
    return f"it records no run status (no {inside}, no tracked_status)"


#: Characters of a failed upload's reason, as recorded and printed.
_WHAT_CHARS = 400


def _failed(server: Server, note: Callable[..., None], task_id: str | None, session_id: str, what: str) -> UploadError:
    """Mark the half-made task failed, with the reason; record it (to be replaced by the next upload).

    With no task id known (``tasks.create`` done, its answer lost), the tasks tagged for the session are it.
    """
    what = what[:_WHAT_CHARS]
    if task_id is None:
        with contextlib.suppress(UploadError):
            found = server.tagged(session_id)
            task_id = str(found[-1]["id"]) if found else None
            what = f"the server made the task but its id never reached ClearML ({what})" if found else what
    note(state="failed", task=task_id, problem=what)
    if task_id is None:
        return UploadError(f"upload failed: {what}; no task was created")
    try:
        server.call("tasks.failed", task=task_id, force=True, status_reason=f"tracked upload: {what}"[:200],
                    status_message=INCOMPLETE)  # fmt: skip
        marked = "marked failed"
    except UploadError as exc:
        marked = f"not marked failed either ({exc})"
    link = server.link(task_id)
    return UploadError(
        f"upload incomplete: {what}; the server's task {task_id} is {marked}{f' ({link})' if link else ''}; "
        "`tracked upload` again replaces it"
    )


def _settle(task_id: str, session: Session, server: Server) -> None:
    """ClearML's import ends every task completed: give it the status the run really had.

    The same calls as the run reported online (completed, then failed or
    stopped with ``force``, as clearml-server's state machine requires).
    An interrupted run (its process died) never reported its final
    metrics: the means over the examples it recorded are reported as its
    single values, and the run goes to the server as stopped.
    """
    status = session.status
    if status == "interrupted":
        from clearml import Task

        task: Task = Task.get_task(task_id=task_id)
        logger = task.get_logger()
        for name, value in session.single_values.items():
            if math.isfinite(value):
                logger.report_single_value(name=name, value=value)
        logger.flush(wait=True)
        task.set_user_properties(tracked_status="interrupted")
    if status in ("stopped", "interrupted"):
        message = "tracked: interrupted (its process died)" if status == "interrupted" else None
        server.call("tasks.stopped", task=task_id, force=True, status_message=message)
    elif status == "failed":
        server.call("tasks.failed", task=task_id, force=True, status_reason=(session.error or "failed")[:200])


@contextlib.contextmanager
def _noting_created(note: Callable[[str], object], tag: str) -> Iterator[None]:
    """Tell ``note`` the id of each task ``Task.create`` makes while the import runs; tag it ``tag``.

    ``import_offline_session`` creates the task first and returns its id
    only at the very end; when it raises in between (a files-server
    error), the task it made must still be found, to be marked failed. When
    the answer to ``tasks.create`` itself is lost, the system tag (the one
    ClearML gives a new task, ``development``, replaced by the session's)
    is how it is found (``Server.tagged``).
    """
    from clearml import Task

    original = Task.__dict__["create"]
    development = Task._development_tag

    def create(cls: type[Task], *args: Any, **kwargs: Any) -> Task:
        task: Task = original.__func__(cls, *args, **kwargs)
        note(str(task.id))
        return task

    Task.create = classmethod(create)  # type: ignore[method-assign,assignment]
    Task._development_tag = tag
    try:
        yield
    finally:
        Task.create = original  # type: ignore[method-assign]
        Task._development_tag = development


@contextlib.contextmanager
def _clearml_quiet(said: io.StringIO) -> Iterator[io.StringIO]:
    """ClearML's own lines while it uploads, kept off the terminal: it prints "ClearML results page"
    even when the server refused every event. Yields them (the reason of a failure is among them)."""
    import logging

    root = logging.getLogger()
    loggers = [root, *(lg for name, lg in logging.Logger.manager.loggerDict.items() if name.startswith("clearml"))]
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if type(handler) is logging.StreamHandler or type(handler).__name__ == "ClearmlStreamHandler":
                moved.append((handler, handler.stream))
                handler.setStream(said)
    ours = logging.StreamHandler(said)  # with a handler there, logging.warning() adds none of its own to stderr
    ours.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))  # Python's own format
    root.addHandler(ours)
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            yield said
    finally:
        root.removeHandler(ours)
        for handler, stream in moved:
            handler.setStream(stream)


#: A warning or error ClearML logged: its own format (``<time> - clearml.Task - ERROR - <message>``) or Python's.
_COMPLAINT = re.compile(r" - (?:WARNING|ERROR|CRITICAL) - (.*)|^(?:WARNING|ERROR|CRITICAL):[^:]*:(.*)")


def _first_complaint(text: str) -> str:
    """The first warning or error ClearML logged (a refused request), without its request body."""
    for line in text.splitlines():
        found = _COMPLAINT.search(line)
        if found:
            return _short(found.group(1) or found.group(2))
    return ""


def _short(what: object) -> str:
    """One line, without the request body ClearML appends to a refused request (``<500/0: ...> (task=...)``)."""
    text = " ".join(str(what).split())
    cut = text.find("> (")
    return (text[: cut + 1] if cut >= 0 else text)[:300]


def _half_made(task: dict[str, Any]) -> bool:
    """A task an upload left unfinished: a draft, still in progress, or marked failed by ``tracked upload``."""
    return task.get("status") in ("created", "in_progress") or task.get("status_message") == INCOMPLETE
