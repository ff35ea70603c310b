"""What arrived: a task on the server read back and compared with the session it was uploaded from."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .server import Server

if TYPE_CHECKING:
    from ..store.session import Session

#: The server status a run's task ends in, as the same run reported online would have left it.
SERVER_STATUS = {"completed": "completed", "failed": "failed", "stopped": "stopped", "interrupted": "stopped"}


def shortfall(session: Session, task_id: str, server: Server) -> list[str]:
    """What the server's task lacks of the session (events per metric, single values, artifacts, status)."""
    missing = []
    for (kind, metric), count in sorted(expected_events(session).items()):
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
        size = None if there is None else remote_size(str(there.get("uri", "")))
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
    expected = SERVER_STATUS.get(session.status, "completed")
    if task.get("status") != expected:
        missing.append(f"status {task.get('status')}, not {expected}")
    recorded = ((params.get("properties") or {}).get("tracked_status") or {}).get("value")
    if session.status in SERVER_STATUS and recorded != session.status:
        missing.append(f"tracked_status {recorded}, not {session.status}")
    return missing


def expected_events(session: Session) -> dict[tuple[str, str], int]:
    """(event type, metric) -> how many events the server should hold after the import.

    What ClearML's import sends: every log event, and the session's metric
    events (those of other tasks it drops). The server keeps one event per
    task, iteration, metric and variant, a later one replacing the earlier.
    """
    from ..store.session_files import events, open_files

    ids: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
    logs = 0
    with open_files(session.path) as files:
        for event in events(files, "metrics.jsonl", []):
            if event.get("task") == session.id:
                key = (str(event.get("type")), str(event.get("metric", "")))
                ids.setdefault(key, set()).add(tuple(str(event.get(f)) for f in ("iter", "variant", "key")))
        logs = sum(1 for _ in events(files, "log.jsonl", []))
    counts = {key: len(found) for key, found in ids.items()}
    if logs:
        counts[("log", "")] = logs
    return counts


def remote_size(uri: str) -> int | None:
    """The size of an uploaded file, as its storage reports it; None when it cannot be found."""
    if not uri.startswith(("http://", "https://", "s3://", "gs://", "azure://")):
        return None  # still the session's local path: the import did not upload it
    from clearml import StorageManager

    size = StorageManager.get_file_size_bytes(uri, silence_errors=True)
    return None if size is None else int(size)
