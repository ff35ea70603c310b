"""Every test runs the real ClearML SDK, offline, in a fresh temporary cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_CLEARML_CREDENTIALS = (
    "CLEARML_API_ACCESS_KEY",
    "CLEARML_API_SECRET_KEY",
    "CLEARML_AUTH_TOKEN",
    "CLEARML_API_HOST",
    "TRAINS_API_ACCESS_KEY",
    "TRAINS_API_SECRET_KEY",
)


@pytest.fixture(autouse=True)
def clearml_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary CLEARML_CACHE_DIR and no server credentials: offline sessions land here."""
    environ = {k: v for k, v in os.environ.items() if k.startswith(("CLEARML_", "TRAINS_"))}
    cache = tmp_path / "clearml-cache"
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(cache))
    # No clearml.conf from the developer's home directory may leak in.
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(tmp_path / "no-clearml.conf"))
    for name in _CLEARML_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("TRACKED_"):
            monkeypatch.delenv(name)
    yield cache
    from clearml import Task

    monkeypatch.undo()  # a test may have broken Task.close on purpose
    task = Task.current_task()
    if task is not None:  # a test that left a task open must not leak it into the next
        task.close()
    # Closing a task sets CLEARML_PROC_MASTER_ID; a child process of a later test
    # would take itself for part of that task.
    for key in [k for k in os.environ if k.startswith(("CLEARML_", "TRAINS_"))]:
        del os.environ[key]
    os.environ.update(environ)


@pytest.fixture
def children() -> Iterator[list[Any]]:
    """Child processes a test started (anything with ``kill()``); any still running at its end are killed."""
    started: list[Any] = []
    yield started
    for child in started:
        child.kill()
