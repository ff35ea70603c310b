"""ClearML's task is made in the background: the evaluation scores its first examples meanwhile.

Each test holds the task's creation at the pause point ``create:ClearMLSink`` in a real child process, and
checks from inside the evaluation that it runs while the creation is held; then lets it go on, or makes it
fail, or ends the process there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.waiting import wait_until
from tracked import read_session
from tracked.store.journal import read_journal

#: The child: 40 examples; the 6th waits until the journal holds the first five (written while ClearML's task
#: is held), then lets the creation go on (MODE=release) or waits to be ended (MODE=hold); MODE=plain: no waits.
EVALUATION = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path
    from tracked import tracked_eval

    marker, cache = Path(os.environ["TRACKED_PAUSE_FILE"]), Path(os.environ["CLEARML_CACHE_DIR"])

    def journal_count():
        counts = [json.loads(p.read_text())["count"] for p in (cache / "tracked-runs").glob("*/run.json")]
        return max(counts, default=0)

    def wait(predicate):
        deadline = time.monotonic() + 60
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    @tracked_eval(task_name="in the background", flush_interval=0.05, verbose=False, resume=True,
                  task_init=json.loads(os.environ.get("TASK_INIT", "null")))
    def evaluate(items):
        for i in items:
            if i == 0 and os.environ["MODE"] != "plain":
                wait(marker.exists)  # the creation reached its pause point: held there
                print("HELD AT FIRST", flush=True)
            if i == 5 and os.environ["MODE"] != "plain":
                wait(lambda: journal_count() >= 5)  # the journal has them, the task is still being made
                print("JOURNAL", journal_count(), marker.exists(), flush=True)
                if os.environ["MODE"] == "release":
                    marker.unlink()
                else:
                    time.sleep(3600)  # ended here by the test
            yield {"acc": i % 2, "score": i / 40, "answer": f"text {i}"}

    result = evaluate(list(range(40)))
    print("RESULT", json.dumps({"status": result.status, "n": result["num_examples"], "acc": result["acc"],
          "session": None if result.session_dir is None else str(result.session_dir),
          "saved": None if result.saved_to is None else str(result.saved_to)}), flush=True)
    """
)


def _start(tmp_path: Path, mode: str, **env: str) -> subprocess.Popen[str]:
    script = tmp_path / "evaluate.py"
    script.write_text(EVALUATION, encoding="utf-8")
    environ = {**os.environ, "TRACKED_PAUSE_AT": "create:ClearMLSink", "TRACKED_PAUSE_FILE": str(tmp_path / "held"),
               "MODE": mode, "PYTHONWARNINGS": "always", **env}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, str(script)], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(out: str) -> dict[str, object]:
    return dict(json.loads(out.split("RESULT ", 1)[1]))


def test_the_first_examples_are_scored_while_the_task_is_made_and_the_run_ends_whole(
    tmp_path: Path, clearml_cache: Path
) -> None:
    """The evaluation's first example runs while ClearML's task creation is held, and the journal holds five
    examples before the task exists; once it is made, the run ends complete: every example in the offline
    session (the journal moved into it), every progress point streamed, the final metrics."""
    child = _start(tmp_path, "release")
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err[-3000:]
    assert "HELD AT FIRST" in out
    assert "JOURNAL 5 True" in out  # five examples durable while the creation was still held
    result = _result(out)
    assert (result["status"], result["n"], result["acc"], result["saved"]) == ("completed", 40, 0.5, None)
    assert "TrackedWarning" not in err
    session = read_session(str(result["session"]))
    assert session.status == "completed"
    assert session.num_examples == 40
    assert session.single_values["acc"] == 0.5
    assert list(session.examples()["score"]) == [i / 40 for i in range(40)]
    progress = session.scalars["Training Progress"]
    assert [i for i, _ in progress["score"]] == list(range(40))  # the points before the task: streamed too
    assert [v for _, v in progress["score"]] == [i / 40 for i in range(40)]
    assert not list((clearml_cache / "tracked-runs").glob("*/run.json"))  # the journal is in the session only


def test_a_task_that_cannot_be_made_in_the_background_is_one_warning_and_a_local_save(
    tmp_path: Path, clearml_cache: Path
) -> None:
    """ClearML raising while the task is made in the background (here: an argument ``Task.init`` refuses):
    one warning naming the cause, the result returned, the run saved locally and its journal complete."""
    child = _start(tmp_path, "release", TASK_INIT=json.dumps({"no_such_argument": 1}))
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err[-3000:]
    result = _result(out)
    assert (result["status"], result["n"], result["acc"], result["session"]) == ("completed", 40, 0.5, None)
    assert err.count("TrackedWarning") == 1, err
    assert "no_such_argument" in err
    saved = Path(str(result["saved"]))
    assert json.loads((saved / "metrics.json").read_text())["metrics"]["num_examples"] == 40
    (run_json,) = (clearml_cache / "tracked-runs").glob("*/run.json")
    journal = read_journal(run_json.parent)
    assert (journal.status, journal.count) == ("completed", 40)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_run_ended_while_its_task_is_made_is_readable_and_resumable(
    tmp_path: Path, clearml_cache: Path, how: signal.Signals
) -> None:
    """The process ended (SIGTERM, SIGKILL) while ClearML's task creation is held: the journal holds the examples
    scored so far (SIGTERM: the run's end waits for the task until the creation's deadline, then saves it locally
    as stopped), ``resume=True`` continues it to 40."""
    child = _start(tmp_path, "hold")
    assert child.stdout is not None
    wait_until(lambda: "JOURNAL" in child.stdout.readline(), what="the journal to hold five examples")  # type: ignore[union-attr]
    child.send_signal(how)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -how, err[-3000:]
    (run_json,) = (clearml_cache / "tracked-runs").glob("*/run.json")
    journal = read_journal(run_json.parent)
    assert journal.count == 5
    assert journal.status == ("stopped" if how == signal.SIGTERM else "interrupted")
    assert read_session(run_json.parent).num_examples == 5
    if how == signal.SIGTERM:  # ended by tracked's handler: ClearML given up, the run saved as for any failure
        (saved,) = (clearml_cache / "tracked-runs").glob("*/metrics.json")
        assert json.loads(saved.read_text())["status"] == "stopped"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKED_PAUSE")}
    again = subprocess.run(
        [sys.executable, str(tmp_path / "evaluate.py")],
        env={**environ, "MODE": "plain", "TRACKED_PAUSE_FILE": str(tmp_path / "never")},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    result = _result(again.stdout)
    assert (result["status"], result["n"], result["acc"]) == ("completed", 40, 0.5)
    assert list(read_session(str(result["session"])).examples()["score"]) == [i / 40 for i in range(40)]
