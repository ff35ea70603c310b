"""Where a session's upload stands: which task it went to, on which server, and whether it is whole.

The record is what makes a second upload of a session replace a half-made
task instead of adding one beside it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store.session import Session

UPLOAD_RECORD = "tracked-upload.json"


def record_paths(path: Path) -> tuple[Path, Path]:
    """Where a session's upload record lives: in its folder, and beside its zip (hidden, so that a glob
    over the sessions never takes it for one). A folder and its zip are one run: both places are read."""
    folder = path if path.is_dir() else path.with_suffix("")
    archive = path.with_name(path.name + ".zip") if path.is_dir() else path
    return folder / UPLOAD_RECORD, archive.with_name(f".{archive.name}.{UPLOAD_RECORD}")


def recorded(session: Session, host: str) -> dict[str, Any] | None:
    """The latest record of this session's upload to this server, from either place."""
    latest: dict[str, Any] | None = None
    for path in record_paths(session.path):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            entry = record["uploads"][host] if record.get("session") == session.id else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(entry, dict) and (latest is None or float(entry.get("time", 0)) > float(latest.get("time", 0))):
            latest = entry
    return latest


def noter(session: Session, host: str) -> Callable[..., None]:
    """``note(state=..., task=...)``: record where the session's upload stands (replaced atomically).

    A session whose place cannot be written (a read-only share) still
    uploads: the first failure is one line on stderr.
    """
    import time

    path = record_paths(session.path)[0 if session.path.is_dir() else 1]
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
