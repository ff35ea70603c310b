"""The runs in ClearML's offline cache, for ``tracked ls`` and ``tracked rm``.

Only what a listing needs is read: each session's ``task.json`` name and
its journal's ``run.json`` (status, examples, when it started), never its
examples or charts, so listing a cache of large runs stays quick.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import journal

#: A task.json larger than this is not read for its name (a hostile file): the folder's name stands in.
_MAX_TASK_BYTES = 16 << 20


@dataclass(frozen=True)
class Listed:
    """One run in the cache."""

    path: Path
    name: str
    status: str
    examples: int | None
    #: When the run started (seconds since the epoch): its journal's, else the folder's modification time.
    started: float


def offline_folder() -> Path:
    """``$CLEARML_CACHE_DIR/offline`` (ClearML's default cache ``~/.clearml/cache`` when unset)."""
    cache = os.environ.get("CLEARML_CACHE_DIR") or os.environ.get("TRAINS_CACHE_DIR") or "~/.clearml/cache"
    return Path(os.path.expandvars(os.path.expanduser(cache))) / "offline"


def sessions_in(folder: Path) -> list[Listed]:
    """The session folders in ``folder``, and the zips whose folder is gone, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if is_session(p) and (p.suffix != ".zip" or not p.with_suffix("").exists())]
    return sorted(map(describe, found), key=lambda listed: (listed.started, listed.path.name))


def describe(path: Path) -> Listed:
    """What ``tracked ls`` shows of the session at ``path`` (a folder or its zip)."""
    name, status, examples = path.name.removesuffix(".zip"), "unknown", None
    try:
        started = path.stat().st_mtime
    except OSError:
        started = 0.0
    if path.is_dir():
        task = path / "task.json"
        try:
            if task.stat().st_size <= _MAX_TASK_BYTES:
                name = str(json.loads(task.read_text(encoding="utf-8")).get("name") or name)
        except (OSError, ValueError, AttributeError):
            pass  # the folder's name stands in
        folder = path / journal.FOLDER / "0"
        if (folder / journal.STATE).is_file() and not folder.is_symlink():
            try:
                state = journal.read_journal(folder, with_data=False)
                status, examples = state.status, state.count
                when = state.state.get("started_at")
                started = float(when) if isinstance(when, (int, float)) else started
            except Exception:  # noqa: BLE001 - a damaged journal is listed as unknown, never a traceback
                status = "unknown"
    return Listed(path, name, status, examples, started)


def remove(path: Path) -> list[Path]:
    """Delete a session: its folder and its zip (whichever exist); the paths deleted."""
    folder = path.with_suffix("") if path.suffix == ".zip" else path
    gone = []
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
        gone.append(folder)
    archive = folder.with_name(folder.name + ".zip")
    if archive.is_file():
        archive.unlink()
        gone.append(archive)
    return gone


def is_session(path: Path) -> bool:
    """A session folder (it holds task.json) or a session's zip: what ``tracked rm`` agrees to delete."""
    if path.suffix == ".zip":
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith("task.json") for name in archive.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    return path.is_dir() and not path.is_symlink() and (path / "task.json").is_file()
