"""What the upload tests share: a child's environment aimed at the stand-in server, session copies,
``tracked upload`` run as a user runs it, and the upload record read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .clearml_server import StandInServer


def child_env(home: Path, server: StandInServer | None) -> dict[str, str]:
    """The test process's environment without ClearML's or tracked's settings; the stand-in server's, if any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "TRACKED_"))}
    env.update(HOME=str(home), CLEARML_CACHE_DIR=str(home / "cache"), CLEARML_CONFIG_FILE=str(home / "none.conf"))
    if server is not None:
        env.update(server.env())
    return env


def copy_of(session: Path, into: Path) -> Path:
    """A session's folder (and zip, when it has one) in a place of the test's own (records are written beside)."""
    into.mkdir(parents=True, exist_ok=True)
    if session.with_name(session.name + ".zip").exists():
        shutil.copy2(session.with_name(session.name + ".zip"), into)
    return Path(shutil.copytree(session, into / session.name))


def start_upload(server: StandInServer, home: Path, *runs: str | Path) -> subprocess.Popen[str]:
    """``tracked upload RUN...`` started in a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tracked", "upload", *map(str, runs)],
        env=child_env(home, server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def upload(server: StandInServer, home: Path, *runs: str | Path) -> subprocess.CompletedProcess[str]:
    """``tracked upload RUN...`` in a child process, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "tracked", "upload", *map(str, runs)],
        env=child_env(home, server), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def record(path: Path) -> dict[str, Any]:
    """The upload record of a session folder (inside it) or zip (hidden beside it), for the one server used."""
    where = path / "tracked-upload.json" if path.is_dir() else path.with_name(f".{path.name}.tracked-upload.json")
    (entry,) = json.loads(where.read_text())["uploads"].values()
    return dict(entry)
