"""Python scripts in child processes, each with its own ``CLEARML_CACHE_DIR``, and the one session such a run wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def run_script(
    code: str, cache: Path, *, env: dict[str, str] | None = None, shell_tail: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python script.py`` (``code``, written beside ``cache``) with ``CLEARML_CACHE_DIR=cache``.

    ``shell_tail`` runs it in a shell with that after it (``| head -c 0``: stdout a closed pipe).
    """
    script = cache.parent / "script.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    environ = {**os.environ, "CLEARML_CACHE_DIR": str(cache), **(env or {})}
    command: str | list[str] = [sys.executable, str(script)]
    if shell_tail:
        command = f"{sys.executable} {script} {shell_tail}"
    return subprocess.run(
        command, shell=bool(shell_tail), env=environ, capture_output=True, text=True, timeout=120, check=False,
        encoding="utf-8", errors="replace",
    )  # fmt: skip


def only_session(cache: Path) -> Path:
    """The one offline session folder under ``cache``."""
    (folder,) = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    return folder
