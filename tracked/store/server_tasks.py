"""A task on the configured ClearML server seen as a ``Session``: ``tracked show TASK_ID`` and
``tracked compare PROJECT`` read runs that are on a server the way they read offline sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common.errors import SessionError
from .session import Session, keep_table, parse_table


def read_task(task_id: str) -> Session:
    """The same view of a task on the configured ClearML server (``tracked show TASK_ID``)."""
    from clearml import Task

    try:
        task: Task = Task.get_task(task_id=task_id)
    except Exception as exc:  # noqa: BLE001 - any server-side failure is one clear line
        raise SessionError(f"{task_id}: not a readable ClearML task ({type(exc).__name__}: {exc})") from None
    data = {
        "id": task.id,
        "name": task.name,
        "project_name": task.get_project_name(),
        "hyperparams": {
            section: {name: {"value": value} for name, value in params.items()}
            for section, params in _sections(task.get_parameters_as_dict()).items()
        },
    }
    session = Session(path=Path(f"clearml:{task.id}"), task=data)
    session.task.setdefault("hyperparams", {}).setdefault("properties", {})["tracked_status"] = {
        "value": str(task.get_user_properties(value_only=True).get("tracked_status") or task.get_status())
    }
    for title, series in (task.get_reported_scalars(max_samples=0) or {}).items():
        for name, points in series.items():
            session.scalars.setdefault(title, {})[name] = list(
                zip((int(x) for x in points.get("x", [])), (float(y) for y in points.get("y", [])), strict=False)
            )
    session.single_values.update({str(k): float(v) for k, v in (task.get_reported_single_values() or {}).items()})
    for plot in task.get_reported_plots() or []:
        table = parse_table(str(plot.get("metric", "")), str(plot.get("variant", "")), plot.get("plot_str", ""))
        if table is not None:
            keep_table(session.tables, table)
    session.console = "\n".join(task.get_reported_console_output(number_of_reports=100) or [])
    return session


def _sections(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(k): v for k, v in params.items() if isinstance(v, dict)}


def project_task_ids(project: str) -> list[str]:
    """Ids of the tasks in a ClearML project on the configured server, oldest first."""
    from clearml import Task

    try:
        tasks: list[Task] = Task.get_tasks(project_name=project)
    except Exception as exc:  # noqa: BLE001
        raise SessionError(f"{project}: cannot list the ClearML project ({type(exc).__name__}: {exc})") from None
    return [str(t.id) for t in reversed(tasks or [])]
