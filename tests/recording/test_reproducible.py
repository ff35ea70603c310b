"""A tracked task has a script section (repository, commit, diff, packages, entry point) like any ClearML task,
offline and once uploaded; detected in the background and never held for at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.clearml_server import StandInServer
from support.scripts import only_session
from support.uploads import upload

from tracked import read_session

EVALUATION = """\
import json, sys, warnings
from tracked import tracked_eval

@tracked_eval(verbose=False)
def evaluate(dataset):
    for value in dataset:
        yield {"acc": value}

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    result = evaluate([1.0, 0.0, 1.0])
print("RESULT", json.dumps({"acc": result["acc"], "warnings": [str(w.message) for w in caught]}))
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def run_in_repository(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Path, dict[str, Any], str]:
    """evaluate.py committed in a fresh repository, then edited (an uncommitted diff), run as a script."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", ".")
    (repo / "evaluate.py").write_text(EVALUATION)
    git(repo, "add", "evaluate.py")
    git(repo, "commit", "-q", "-m", "the evaluation")
    (repo / "evaluate.py").write_text(EVALUATION + "# tuned\n")
    cache = tmp_path / "cache"
    environ = {**os.environ, "CLEARML_CACHE_DIR": str(cache), **(env or {})}
    done = subprocess.run(
        [sys.executable, "evaluate.py"], cwd=repo, env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return only_session(cache), json.loads(line.removeprefix("RESULT ")), git(repo, "rev-parse", "HEAD")


def test_an_offline_session_carries_the_script_section(tmp_path: Path) -> None:
    """Entry point, commit, the uncommitted diff and the installed packages, as ClearML records them."""
    folder, result, commit = run_in_repository(tmp_path)
    assert result["warnings"] == []
    script = read_session(folder).task["script"]
    assert script["entry_point"] == "evaluate.py"
    assert script["version_num"] == commit
    assert "+# tuned" in script["diff"]
    assert "clearml ==" in script["requirements"]["pip"]


def test_reproducible_off_leaves_no_script_section(tmp_path: Path) -> None:
    """TRACKED_REPRODUCIBLE=0: no detection, no script section."""
    folder, _, _ = run_in_repository(tmp_path, env={"TRACKED_REPRODUCIBLE": "0"})
    assert not read_session(folder).task.get("script")


def test_the_end_of_a_run_never_waits_for_a_stuck_detection(tmp_path: Path) -> None:
    """A detection that never finishes (held by the pause hook): the run ends, one warning, no script section."""
    folder, result, _ = run_in_repository(
        tmp_path, env={"TRACKED_PAUSE_AT": "repository", "TRACKED_PAUSE_FILE": str(tmp_path / "paused")}
    )
    assert (tmp_path / "paused").is_file()
    assert result["acc"] == 2 / 3
    (warning,) = result["warnings"]
    assert "no script section" in warning
    assert "TRACKED_REPRODUCIBLE=0" in warning
    assert not read_session(folder).task.get("script")
    assert read_session(folder).status == "completed"


def test_tracked_upload_keeps_the_script_section(tmp_path: Path) -> None:
    """Uploaded to the stand-in server, the task has the session's script section: it can be cloned and enqueued."""
    folder, _, commit = run_in_repository(tmp_path)
    with StandInServer() as server:
        done = upload(server, tmp_path / "home", folder)
        assert done.returncode == 0, done.stdout + done.stderr
        (task,) = server.tasks.values()
        assert task["script"]["entry_point"] == "evaluate.py"
        assert task["script"]["version_num"] == commit
        assert "+# tuned" in task["script"]["diff"]
        assert task["type"] == "testing"
