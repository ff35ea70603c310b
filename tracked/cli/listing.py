"""``tracked show --format json``, ``tracked ls`` and ``tracked rm``: runs as data, and the offline cache
listed and cleaned up."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..store.cache import describe, is_session, offline_folder, remove, sessions_in
from .render import columns

if TYPE_CHECKING:
    from ..store.runs import Problems
    from ..store.session import Session


def _number(value: Any) -> Any:
    """A number as JSON holds it: NaN and infinities as null (JSON has neither), counts as integers."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


def show_json(sessions: Sequence[Session]) -> str:
    """What ``tracked show`` prints, as one JSON document: ``{"runs": [...]}``."""
    runs = []
    for session in sessions:
        runs.append(
            {
                "path": str(session.path),
                "id": session.id,
                "name": session.name,
                "project": session.project,
                "status": session.status,
                "resumed_by": session.resumed_by,
                "error": session.error or None,
                "num_examples": session.num_examples,
                "arguments": session.hyperparameters.get("Args", {}),
                "single_values": {k: _number(v) for k, v in session.single_values.items()},
                "statistics": {m: {k: _number(v) for k, v in row.items()} for m, row in session.statistics.items()},
                "tables": {
                    title: {"header": t.header, "rows": [[_number(c) for c in row] for row in t.rows]}
                    for title, t in session.tables.items()
                },
                "scalars": {
                    title: {name: [[i, _number(v)] for i, v in points] for name, points in series.items()}
                    for title, series in session.scalars.items()
                },
            }
        )
    return json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "-"


def list_runs(folder: Path | None, fmt: str, out: TextIO) -> None:
    """``tracked ls``: every run in the offline cache, oldest first."""
    where = folder or offline_folder()
    listed = sessions_in(where)
    if fmt == "json":
        rows = [
            {"name": r.name, "status": r.status, "examples": r.examples, "started": r.started, "path": str(r.path)}
            for r in listed
        ]
        out.write(json.dumps({"folder": str(where), "runs": rows}, indent=2, ensure_ascii=False) + "\n")
        return
    if not listed:
        print(f"no runs in {where}", file=out)
        return
    header = ["name", "status", "examples", "started", "path"]
    cells = [
        [r.name, r.status, "-" if r.examples is None else f"{r.examples:,}", _when(r.started), str(r.path)]
        for r in listed
    ]
    for line in columns(header, cells):
        print(line.rstrip(), file=out)


def remove_runs(specs: Sequence[str], older_than: float | None, dry_run: bool, problems: Problems, out: TextIO) -> None:
    """``tracked rm``: delete sessions (folder and zip); never a run still going, never what is no session."""
    import glob

    if specs:
        paths = [Path(p) for spec in specs for p in (sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec])]
    else:  # --older-than alone: the whole offline cache
        paths = [listed.path for listed in sessions_in(offline_folder())]
    cutoff = None if older_than is None else time.time() - older_than * 86400
    seen: set[Path] = set()
    for path in paths:
        folder = path.with_suffix("") if path.suffix == ".zip" else path
        if folder in seen:  # a session's folder and its zip are one run
            continue
        seen.add(folder)
        if not is_session(path):
            problems.add(f"{path}: not a session (no such file or folder, or no task.json); nothing removed")
            continue
        listed = describe(folder if folder.is_dir() else path)
        if listed.status == "running":
            problems.add(f"{path}: still running (its process writes to it); nothing removed")
            continue
        if cutoff is not None and listed.started >= cutoff:
            continue
        if dry_run:
            print(f"would remove {folder} ({listed.name}, {listed.status}, started {_when(listed.started)})", file=out)
            continue
        try:
            gone = remove(path)
        except OSError as exc:
            problems.add(f"{path}: cannot be removed ({exc.strerror or exc})")
            continue
        print(f"removed {', '.join(map(str, gone))}", file=out)
