"""``tracked upload``: offline sessions to the configured ClearML server, checked on arrival.

ClearML's ``import_offline_session`` sends a session; this module makes the
server's task say what the run really was (its status, error, parameter
types), reads it back and compares it with the session (events per metric,
single values, console, artifact), and records which task a session went to,
so that a failed upload is one clear line (exit code 2) and a second upload
makes no second task. See the README's upload section.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from ..store.runs import SERVER_TIMEOUT_S, Problems, load_runs
from ..store.session import Session
from .record import noter, recorded
from .server import Server, UploadError
from .verify import shortfall


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
    sessions = load_runs(specs, problems)
    try:
        server = Server()
    except Exception as exc:  # noqa: BLE001 - refused credentials and the like: one line, not a traceback
        problems.add(f"cannot log in to the configured ClearML server ({type(exc).__name__}: {_short(exc)})")
        return
    outcomes: dict[str, int] = {"uploaded": 0, "already uploaded": 0, "failed": 0}
    # A bar for a batch of sessions (stderr, only on a terminal); each session's line is written with it lifted.
    bar = tqdm(total=len(sessions), desc="tracked upload", unit="session", disable=None if len(sessions) > 1 else True)
    try:
        for session in sessions:
            try:
                outcome, line = _upload_one(session, server)
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


def _upload_one(session: Session, server: Server) -> tuple[str, str]:
    """Upload one session (unless it is there already); (outcome, the line that says so)."""
    from clearml import Task

    if session.status == "running":
        raise UploadError("the run is still going; upload it once it has ended")
    earlier = recorded(session, server.host)
    if earlier is not None and earlier.get("task"):
        there = server.task(str(earlier["task"]))
        if there is not None and earlier.get("state") == "uploaded":
            link = server.url(there)
            return "already uploaded", f"{session.path}: already uploaded -> {there['id']} ({session.status}) {link}"
        if there is not None:  # what an earlier attempt left half-made: replaced, never kept beside the new one
            server.call("tasks.delete", task=there["id"], force=True)
    note = noter(session, server.host)
    note(state="uploading", task=None)
    created: list[str] = []

    def made(task_id: str) -> None:  # recorded at once: a crash mid-upload leaves the record pointing at it
        created.append(task_id)
        note(state="uploading", task=task_id)

    with _clearml_quiet() as said:
        try:
            with _noting_created(made):
                imported = Task.import_offline_session(str(session.path))
            if not imported:
                raise RuntimeError("ClearML's import returned no task")
            task_id = str(imported)
        except Exception as exc:  # noqa: BLE001 - the half-made task is marked below
            # What ClearML logged (the refused request) says more than the exception its internals raised next.
            clearml = _first_complaint(said.getvalue())
            what = f"{type(exc).__name__}: {_short(exc)}"
            raise _failed(
                server, note, created[-1] if created else None, f"{clearml} ({what})" if clearml else what
            ) from None
        try:
            _settle(task_id, session, server)
            missing = shortfall(session, task_id, server)
        except UploadError as exc:
            missing = [str(exc)]
        if missing:
            clearml = _first_complaint(said.getvalue())
            raise _failed(server, note, task_id, "; ".join(missing) + (f" (ClearML: {clearml})" if clearml else ""))
    note(state="uploaded", task=task_id, status=session.status)
    return "uploaded", f"{session.path} -> {task_id} ({session.status}) {server.link(task_id)}"


def _failed(server: Server, note: Callable[..., None], task_id: str | None, what: str) -> UploadError:
    """Mark the half-made task failed, with the reason; record it (to be replaced by the next upload)."""
    what = what[:400]
    note(state="failed", task=task_id, problem=what)
    if task_id is None:
        return UploadError(f"upload failed: {what}; no task was created")
    try:
        server.call("tasks.failed", task=task_id, force=True, status_reason=f"tracked upload: {what}"[:200],
                    status_message="tracked upload: incomplete")  # fmt: skip
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
def _noting_created(note: Callable[[str], object]) -> Iterator[None]:
    """Tell ``note`` the id of each task ``Task.create`` makes while the import runs.

    ``import_offline_session`` creates the task first and returns its id
    only at the very end; when it raises in between (a files-server
    error), the task it made must still be found, to be marked failed.
    """
    from clearml import Task

    original = Task.__dict__["create"]

    def create(cls: type[Task], *args: Any, **kwargs: Any) -> Task:
        task: Task = original.__func__(cls, *args, **kwargs)
        note(str(task.id))
        return task

    Task.create = classmethod(create)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Task.create = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _clearml_quiet() -> Iterator[io.StringIO]:
    """ClearML's own lines while it uploads, kept off the terminal: it prints "ClearML results page"
    even when the server refused every event. Yields them (the reason of a failure is among them)."""
    import logging

    said = io.StringIO()
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
