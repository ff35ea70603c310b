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
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from .cli import SERVER_TIMEOUT_S, Problems, load_runs
from .session import Session

UPLOAD_RECORD = "tracked-upload.json"
#: The server status a run's task ends in, as the same run reported online would have left it.
_SERVER_STATUS = {"completed": "completed", "failed": "failed", "stopped": "stopped", "interrupted": "stopped"}


class UploadError(Exception):
    """One session's upload went wrong; the message says what, in one line."""


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

    from .sinks._clearml_setup import server_configured, server_unreachable

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
        server = _Server()
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


def _upload_one(session: Session, server: _Server) -> tuple[str, str]:
    """Upload one session (unless it is there already); (outcome, the line that says so)."""
    from clearml import Task

    if session.status == "running":
        raise UploadError("the run is still going; upload it once it has ended")
    earlier = _recorded(session, server.host)
    if earlier is not None and earlier.get("task"):
        there = server.task(str(earlier["task"]))
        if there is not None and earlier.get("state") == "uploaded":
            link = server.url(there)
            return "already uploaded", f"{session.path}: already uploaded -> {there['id']} ({session.status}) {link}"
        if there is not None:  # what an earlier attempt left half-made: replaced, never kept beside the new one
            server.call("tasks.delete", task=there["id"], force=True)
    note = _noter(session, server.host)
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
            missing = _missing(session, task_id, server)
        except UploadError as exc:
            missing = [str(exc)]
        if missing:
            clearml = _first_complaint(said.getvalue())
            raise _failed(server, note, task_id, "; ".join(missing) + (f" (ClearML: {clearml})" if clearml else ""))
    note(state="uploaded", task=task_id, status=session.status)
    return "uploaded", f"{session.path} -> {task_id} ({session.status}) {server.link(task_id)}"


def _failed(server: _Server, note: Callable[..., None], task_id: str | None, what: str) -> UploadError:
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


def _settle(task_id: str, session: Session, server: _Server) -> None:
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


def _missing(session: Session, task_id: str, server: _Server) -> list[str]:
    """What the server's task lacks of the session (events per metric, single values, artifacts, status)."""
    missing = []
    for (kind, metric), count in sorted(_expected_events(session).items()):
        body: dict[str, Any] = {"task": task_id, "event_type": kind, "batch_size": 1, "count_total": True}
        if kind != "log":
            body["metrics"] = [{"metric": metric, "variants": []}]
        got = int(server.call("events.get_task_events", **body).get("total") or 0)
        if got < count:
            what = {"log": "events", "plot": "plots"}.get(kind, "single values" if metric == "Summary" else "points")
            missing.append(f"{metric or 'console'}: {got} of {count} {what}")
    reported = server.call("events.get_task_single_value_metrics", tasks=[task_id]).get("tasks") or []
    values = {str(v.get("variant")): v.get("value") for t in reported for v in t.get("values") or []}
    wrong = [
        name
        for name, value in session.single_values.items()
        if math.isfinite(value)
        and not (isinstance(values.get(name), (int, float)) and math.isclose(values[name], value))
    ]
    if wrong:
        missing.append(f"single values missing or different: {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}")
    task = server.task(task_id)
    if task is None:
        return [*missing, "the task itself is gone"]
    artifacts = {a.get("key"): a for a in (task.get("execution") or {}).get("artifacts") or []}
    for artifact in (session.task.get("execution") or {}).get("artifacts") or []:
        there = artifacts.get(artifact.get("key"))
        size = None if there is None else _remote_size(str(there.get("uri", "")))
        if size is None or size != artifact.get("content_size", size):
            missing.append(f"artifact {artifact.get('key')!r} not on the files server")
    params = task.get("hyperparams") or {}
    for section, items in session.task.get("hyperparams", {}).items():
        for name, item in items.items() if section != "properties" and isinstance(items, dict) else ():
            if not isinstance(item, dict):
                continue
            got_item = (params.get(section) or {}).get(name) or {}
            if (got_item.get("value"), got_item.get("type")) != (
                item.get("value"),
                item.get("type", got_item.get("type")),
            ):
                missing.append(f"hyperparameter {section}/{name}")
    expected = _SERVER_STATUS.get(session.status, "completed")
    if task.get("status") != expected:
        missing.append(f"status {task.get('status')}, not {expected}")
    recorded = ((params.get("properties") or {}).get("tracked_status") or {}).get("value")
    if session.status in _SERVER_STATUS and recorded != session.status:
        missing.append(f"tracked_status {recorded}, not {session.status}")
    return missing


def _expected_events(session: Session) -> dict[tuple[str, str], int]:
    """(event type, metric) -> how many events the server should hold after the import.

    What ClearML's import sends: every log event, and the session's metric
    events (those of other tasks it drops). The server keeps one event per
    task, iteration, metric and variant, a later one replacing the earlier.
    """
    from .session import _events, _files

    ids: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
    logs = 0
    with _files(session.path) as files:
        for event in _events(files, "metrics.jsonl", []):
            if event.get("task") == session.id:
                key = (str(event.get("type")), str(event.get("metric", "")))
                ids.setdefault(key, set()).add(tuple(str(event.get(f)) for f in ("iter", "variant", "key")))
        logs = sum(1 for _ in _events(files, "log.jsonl", []))
    counts = {key: len(found) for key, found in ids.items()}
    if logs:
        counts[("log", "")] = logs
    return counts


def _remote_size(uri: str) -> int | None:
    """The size of an uploaded file, as its storage reports it; None when it cannot be found."""
    if not uri.startswith(("http://", "https://", "s3://", "gs://", "azure://")):
        return None  # still the session's local path: the import did not upload it
    from clearml import StorageManager

    size = StorageManager.get_file_size_bytes(uri, silence_errors=True)
    return None if size is None else int(size)


class _Server:
    """The configured server's REST API, for the calls whose errors ClearML's SDK would only log."""

    def __init__(self) -> None:
        from clearml.backend_api import Session as ApiSession

        self.session = ApiSession()
        self.host = str(self.session.host)

    def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        service, action = endpoint.split(".", 1)
        response = self.session.send_request(service, action, method="post", json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200:
            message = (answer.get("meta") or {}).get("result_msg") or response.reason
            raise UploadError(f"the server answered {endpoint} with HTTP {response.status_code} ({message})")
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    def task(self, task_id: str) -> dict[str, Any] | None:
        """The task's status, project, artifacts and hyperparameters; None when there is no such task."""
        fields = ["id", "status", "status_reason", "project", "execution.artifacts", "hyperparams"]
        found = self.call("tasks.get_all", id=[task_id], only_fields=fields).get("tasks") or []
        return found[0] if found and isinstance(found[0], dict) else None

    def url(self, task: dict[str, Any]) -> str:
        """The task's page in the web UI (from the configured web host)."""
        from clearml import Task

        try:
            return str(Task.get_task_output_log_web_page(str(task["id"]), project_id=task.get("project")))
        except Exception:  # noqa: BLE001 - the link is a convenience
            return ""

    def link(self, task_id: str) -> str:
        """``url`` of a task known by its id only; "" when the server cannot tell (it never hides the outcome)."""
        try:
            task = self.task(task_id)
        except UploadError:
            return ""
        return "" if task is None else self.url(task)


def _record_paths(path: Path) -> tuple[Path, Path]:
    """Where a session's upload record lives: in its folder, and beside its zip (hidden, so that a glob
    over the sessions never takes it for one). A folder and its zip are one run: both places are read."""
    folder = path if path.is_dir() else path.with_suffix("")
    archive = path.with_name(path.name + ".zip") if path.is_dir() else path
    return folder / UPLOAD_RECORD, archive.with_name(f".{archive.name}.{UPLOAD_RECORD}")


def _recorded(session: Session, host: str) -> dict[str, Any] | None:
    """The latest record of this session's upload to this server, from either place."""
    latest: dict[str, Any] | None = None
    for path in _record_paths(session.path):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            entry = record["uploads"][host] if record.get("session") == session.id else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(entry, dict) and (latest is None or float(entry.get("time", 0)) > float(latest.get("time", 0))):
            latest = entry
    return latest


def _noter(session: Session, host: str) -> Callable[..., None]:
    """``note(state=..., task=...)``: record where the session's upload stands (replaced atomically).

    A session whose place cannot be written (a read-only share) still
    uploads: the first failure is one line on stderr.
    """
    import time

    path = _record_paths(session.path)[0 if session.path.is_dir() else 1]
    warned: list[bool] = []

    def note(**entry: Any) -> None:
        try:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                uploads = record["uploads"] if record.get("session") == session.id else {}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                uploads = {}
            uploads[host] = {**entry, "time": time.time()}
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"session": session.id, "uploads": uploads}, indent=1), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            if not warned:
                warned.append(True)
                print(
                    f"tracked: {session.path}: cannot record the upload in {path} ({exc.strerror or exc}); "
                    "uploading this session again would make a second task",
                    file=sys.stderr,
                )

    return note


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
