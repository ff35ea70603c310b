"""The conventions of a command-line tool: --version, show --format json, exit codes, ls and rm."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT

from tracked import tracked_eval
from tracked.cli import main


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracked", *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def run_eval(name: str, values: list[float], fail: bool = False) -> Path:
    @tracked_eval(verbose=False, task_name=name)
    def evaluate(dataset: list[float]) -> Iterator[dict[str, object]]:
        for i, value in enumerate(dataset):
            yield {"acc": value, "prediction": f"p{i}"}
        if fail:
            raise RuntimeError("model crashed")

    if fail:
        with pytest.raises(RuntimeError):
            evaluate(values)
        return _latest()
    folder = evaluate(values).session_dir
    assert folder is not None
    return Path(folder)


def _latest() -> Path:
    """The session written last (a failed run returns no result to ask)."""
    folders = [p for p in Path(os.environ["CLEARML_CACHE_DIR"], "offline").iterdir() if p.is_dir()]
    return max(folders, key=lambda p: p.stat().st_mtime_ns)


def test_version() -> None:
    """``tracked --version`` prints the installed version and exits 0."""
    from tracked.common.meta import version

    done = child("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tracked {version()}"


def test_show_as_json() -> None:
    """``show --format json``: one document with each run's status, values, statistics and charts."""
    folder = run_eval("json run", [1.0, 0.0, 1.0, 1.0])
    code, out, err = cli("show", str(folder), "--format", "json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert run["path"] == str(folder)
    assert run["name"] == "json run"
    assert run["status"] == "completed"
    assert run["resumed_by"] is None
    assert run["num_examples"] == 4
    assert run["single_values"]["acc"] == 0.75
    assert run["single_values"]["num_examples"] == 4
    assert run["statistics"]["acc"]["n"] == 4
    assert [i for i, _ in run["scalars"]["Training Progress"]["acc"]] == [0, 1, 2, 3]
    assert "Final Metrics" in run["tables"]


def test_exit_codes_tell_failures_from_usage_errors() -> None:
    """1: something failed at run time (a RUN that cannot be read); 2: a usage error (argparse's, or three
    runs for --paired)."""
    folder = run_eval("exit codes", [1.0])
    assert cli("show", "/no/such/session")[0] == 1
    assert child("show", str(folder), "--no-such-option").returncode == 2
    done = child("compare", str(folder), str(folder), str(folder), "--paired")
    assert done.returncode == 2
    assert "exactly two runs" in done.stderr
    assert child("rm").returncode == 2  # nothing to remove named


def test_ls_lists_the_runs_in_the_cache(clearml_cache: Path) -> None:
    """``tracked ls``: name, status, examples, date and path of each run in $CLEARML_CACHE_DIR/offline."""
    done = run_eval("first run", [1.0, 0.0])
    failed = run_eval("second run", [1.0, 1.0, 1.0], fail=True)
    code, out, err = cli("ls")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["name", "status", "examples", "started", "path"]
    assert len(rows) == 2
    assert rows[0].split()[:4] == ["first", "run", "completed", "2"]
    assert rows[0].endswith(str(done))
    assert rows[1].split()[:4] == ["second", "run", "failed", "3"]
    assert rows[1].endswith(str(failed))
    code, out, _ = cli("ls", "--format", "json")
    listed = json.loads(out)
    assert listed["folder"] == str(clearml_cache / "offline")
    assert [(r["name"], r["status"], r["examples"]) for r in listed["runs"]] == [
        ("first run", "completed", 2),
        ("second run", "failed", 3),
    ]


def test_rm_with_a_dry_run_first(clearml_cache: Path, tmp_path: Path) -> None:
    """``rm --dry-run`` names what it would remove and removes nothing; ``rm`` removes folder and zip;
    what is no session is kept, with one line and exit code 1; ``--older-than`` keeps recent runs."""
    old, kept = run_eval("old run", [1.0]), run_eval("kept run", [0.0])
    code, out, err = cli("rm", str(old), "--dry-run")
    assert code == 0, err
    assert out.startswith(f"would remove {old} (old run, completed")
    assert old.is_dir()
    assert Path(f"{old}.zip").is_file()

    code, out, err = cli("rm", "--older-than", "1")  # the whole cache, but nothing is a day old
    assert (code, out, err) == (0, "", "")
    assert old.is_dir()
    assert kept.is_dir()

    code, out, err = cli("rm", f"{old}.zip")
    assert code == 0, err
    assert out.strip() == f"removed {old}, {old}.zip"
    assert not old.exists()
    assert not Path(f"{old}.zip").exists()
    assert kept.is_dir()

    stranger = tmp_path / "not-a-session"
    stranger.mkdir()
    code, _, err = cli("rm", str(stranger))
    assert code == 1
    assert "not a session" in err
    assert stranger.is_dir()
