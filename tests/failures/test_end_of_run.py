"""The end of a run, killed at named points: the journal vouches only for what is on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tracked import read_session
from tracked.cli import main

EVALUATION = textwrap.dedent(
    """
    import sys
    from tracked import tracked_eval

    @tracked_eval(task_name="killed at the end", resume=True, verbose=False, flush_interval=0.2)
    def evaluate(dataset):
        for x in dataset:
            yield {"acc": x % 2, "answer": f"text {x}"}

    result = evaluate(list(range(200)))
    print("RESULT", result.status, result["num_examples"], result["acc"], result.session_dir)
    """
)


def _run(script: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)


def _killed_at(point: str, tmp_path: Path) -> Path:
    """Run the evaluation until its end reaches ``point``, SIGKILL it there; its session folder."""
    script = tmp_path / "evaluate.py"
    script.write_text(EVALUATION, encoding="utf-8")
    marker = tmp_path / "paused"
    env = {**os.environ, "TRACKED_PAUSE_AT": point, "TRACKED_PAUSE_FILE": str(marker)}
    child = _run(script, env)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, "the evaluation ended without reaching the pause point"
        assert time.monotonic() < deadline, f"{point} never reached"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    (session,) = [p for p in (Path(os.environ["CLEARML_CACHE_DIR"]) / "offline").iterdir() if p.is_dir()]
    return session


@pytest.mark.parametrize("point", ["finish:ClearMLSink", "finish:JournalSink", "close:ClearMLSink"])
def test_a_run_killed_before_its_end_is_on_disk_is_interrupted_and_resumable(
    point: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed before ClearML's final report, or after it but before the journal said how the run ended,
    the run is interrupted (not completed) and resume finishes it; killed once the journal said it
    (only ClearML's close left), it is completed and holds its final metrics."""
    session = _killed_at(point, tmp_path)
    read = read_session(session)
    assert read.num_examples == 200
    if point == "close:ClearMLSink":  # everything the journal vouches for is there
        assert read.status == "completed"
        assert read.single_values["acc"] == 0.5
        assert "Final Metrics" in read.tables
        return
    assert read.status == "interrupted"
    assert main(["show", str(session)]) == 0
    assert "interrupted" in capsys.readouterr().out
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKED_PAUSE")}
    resumed = _run(tmp_path / "evaluate.py", env)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    status, count, acc, folder = out.split("RESULT ", 1)[1].split()
    assert (status, count, float(acc)) == ("completed", "200", 0.5)
    again = read_session(folder)
    assert again.status == "completed"
    assert again.num_examples == 200
    assert again.single_values["acc"] == 0.5


def test_a_session_whose_task_json_was_left_empty_is_read_from_its_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill while ClearML rewrites task.json at the end of a run can leave it at 0 bytes: show and
    compare read the session from its journal (one line says so), and its examples are all there."""
    from tracked import tracked_eval

    @tracked_eval(task_name="emptied", verbose=False)
    def evaluate(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield {"acc": float(i % 2), "id": f"q{i}"}

    result = evaluate(1500)
    assert result.session_dir is not None
    (result.session_dir / "task.json").write_bytes(b"")
    read = read_session(result.session_dir)
    assert read.status == "completed"
    assert read.num_examples == 1500
    assert read.name == "emptied"
    assert any("rebuilt from the run's journal" in problem for problem in read.problems)
    assert read.single_values["acc"] == 0.5
    assert len(read.examples()) == 1500
    assert main(["show", str(result.session_dir)]) == 1  # shown, with the problem on stderr
    captured = capsys.readouterr()
    assert "completed" in captured.out
    assert "rebuilt from the run's journal" in captured.err
    assert main(["compare", str(result.session_dir), "--format", "csv"]) == 1
    assert "0.5" in capsys.readouterr().out
