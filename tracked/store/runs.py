"""The runs a command is given: session folders, zips and globs, or tasks and projects on a server.

A RUN that cannot be read is one line on stderr (``Problems``); the others
are still read, and the command's exit code says some could not be.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..common.errors import SessionError
from .session import Session, read_session


class Problems:
    """Collects one-line problems for stderr; any problem makes the exit code 2."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        print(f"tracked: {message}", file=self.stream)

    def note(self, message: str) -> None:
        """A line on stderr that is no problem (the exit code stays 0)."""
        print(f"tracked: {message}", file=self.stream)


def current(sessions: Sequence[Session], problems: Problems) -> list[Session]:
    """The sessions without the parts another run continued (``resume=True``): that run holds their
    examples, so comparing both would show one evaluation twice. Each one left out is a note."""
    kept = []
    for session in sessions:
        if session.superseded:
            problems.note(
                f"left out {session.path} ({session.status}, resumed by {session.resumed_by}); "
                "--include-superseded keeps it"
            )
        else:
            kept.append(session)
    return kept


def load_runs(specs: Sequence[str], problems: Problems, events: bool = True) -> list[Session]:
    """Sessions for each RUN argument (globs expanded); unreadable ones become problems."""
    sessions: list[Session] = []
    # Globs in the order the runs were written, oldest first.
    expanded = [sorted(glob.glob(spec), key=_mtime) if glob.has_magic(spec) else [spec] for spec in specs]
    # A session's folder and its zip are one run, however they were named.
    folders = {os.path.normpath(p) for paths in expanded for p in paths if os.path.isdir(p)}
    for spec, paths in zip(specs, expanded, strict=True):
        if not paths:
            problems.add(f"{spec}: no such file or folder")
        for path in paths:
            if path.endswith(".zip") and os.path.normpath(path[: -len(".zip")]) in folders:
                continue
            try:
                local = Path(path).exists() or _looks_like_a_path(path) or not _server()
                found = [read_session(path, events)] if local else _from_server(path)
            except SessionError as exc:
                problems.add(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a hostile or broken session is one line, not a traceback
                problems.add(f"{path}: not a readable session ({type(exc).__name__}: {str(exc)[:200]})")
                continue
            for session in found:
                for problem in session.problems:
                    problems.add(f"{path}: {problem}; showing what could be read")
                if session.status == "unknown":
                    problems.add(f"{path}: no final status recorded (the run may have crashed); showing what it wrote")
                sessions.append(session)
    return sessions


def _mtime(path: str) -> float:
    """When ``path`` was written; a broken link, or a file gone since the glob, sorts first (and is then
    one line of its own when it cannot be read), never the end of the whole command."""
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def _server() -> bool:
    from ..common.clearml_env import server_configured

    return server_configured()


def _looks_like_a_path(spec: str) -> bool:
    """A RUN written as a path is never looked up on a server (a typo must not wait for one)."""
    return os.sep in spec or spec.startswith((".", "~")) or spec.endswith(".zip")


#: Seconds the command waits for a configured server to answer before saying it does not.
SERVER_TIMEOUT_S = 5.0


def _from_server(spec: str) -> list[Session]:
    """RUN that is no path, with a server configured: a task id, else every task of a project."""
    from ..common.clearml_env import server_unreachable
    from .server_tasks import project_task_ids, read_task

    problem = server_unreachable(SERVER_TIMEOUT_S)
    if problem:  # ClearML itself would retry for hours
        raise SessionError(f"{spec}: no such file or folder, and the configured ClearML server {problem}")
    try:
        return [read_task(spec)]
    except SessionError:
        ids = project_task_ids(spec)
    if not ids:
        raise SessionError(f"{spec}: no such file or folder, ClearML task or ClearML project")
    return [read_task(task_id) for task_id in ids]
