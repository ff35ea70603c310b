"""The process around a run: consoles that cannot print, overlapping and nested runs sharing a task, forks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.scripts import only_session, run_script

from tracked import read_session, tracked_eval

UNPRINTABLE = """
    import json
    from tracked import tracked_eval

    @tracked_eval
    def evaluate(dataset):
        for i, text in enumerate(dataset):
            yield {"acc": i % 2, "prediction": text}

    result = evaluate(["café 東京 ✓", json.loads('"\\\\ud83d"'), "plain"])
    with open("RESULT", "w", encoding="utf-8") as out:
        json.dump({"acc": result["acc"], "session": str(result.session_dir), "n": result["num_examples"]}, out)
"""


@pytest.mark.parametrize(
    ("env", "tail"),
    [({"PYTHONIOENCODING": "cp1252"}, ""), ({}, "| head -c 0"), ({"PYTHONIOENCODING": "ascii"}, "")],
    ids=["cp1252", "closed-pipe", "ascii"],
)
def test_a_console_that_cannot_print_leaves_the_result_and_session_whole(
    clearml_cache: Path, tmp_path: Path, env: dict[str, str], tail: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cp1252/ascii consoles, a closed pipe, a lone surrogate: the result keeps its metrics and its session."""
    monkeypatch.chdir(tmp_path)  # the script writes RESULT where it runs
    done = run_script(UNPRINTABLE, clearml_cache, env=env, shell_tail=tail)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    result = json.loads((tmp_path / "RESULT").read_text(encoding="utf-8"))
    assert result["acc"] == pytest.approx(1 / 3)
    assert result["n"] == 3
    session = read_session(result["session"])
    assert session.status == "completed"
    assert session.single_values["acc"] == pytest.approx(1 / 3)
    shown = subprocess.run(
        [sys.executable, "-m", "tracked", "show", result["session"]],
        env={**os.environ, **env}, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert b"Traceback" not in shown.stderr
    assert b"caf" in shown.stdout


def test_overlapping_runs_in_threads_each_know_their_session_and_prefix() -> None:
    """Eight overlapping runs in threads share one task: every result has the session and its own series prefix."""
    barrier = threading.Barrier(8, timeout=60)

    @tracked_eval(verbose=False, task_name="evaluate")
    def evaluate(k: int) -> Iterator[float]:
        barrier.wait()
        for _ in range(50):
            yield float(k)
        barrier.wait()

    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, evaluate(k))) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    sessions = {r.session_dir for r in results.values()}  # type: ignore[attr-defined]
    assert len(sessions) == 1
    assert None not in sessions
    prefixes = {r.prefix for r in results.values()}  # type: ignore[attr-defined]
    assert len(prefixes) == 8
    singles = read_session(next(iter(sessions))).single_values
    for k, result in results.items():
        prefix = result.prefix  # type: ignore[attr-defined]
        assert singles[f"{prefix}/score" if prefix else "score"] == k


def test_later_runs_in_a_shared_task_never_reuse_a_prefix() -> None:
    """An outer evaluation calling the same inner one twice: two prefixes, neither overwrites the other."""

    @tracked_eval(verbose=False, task_name="inner")
    def inner(value: float) -> Iterator[float]:
        yield value

    @tracked_eval(verbose=False, task_name="outer")
    def outer() -> Iterator[float]:
        first, second = inner(1.0), inner(2.0)
        assert first.prefix != second.prefix
        yield first["score"] + second["score"]

    result = outer()
    singles = read_session(result.session_dir).single_values
    assert singles["inner/score"] == 1.0
    assert singles["inner#2/score"] == 2.0
    assert singles["score"] == 3.0


def test_a_fork_pool_inside_an_evaluation_never_writes_into_the_parents_task(clearml_cache: Path) -> None:
    """Workers forked during an evaluation report their own runs elsewhere: the parent's session holds its own only."""
    done = run_script(
        """
        import multiprocessing as mp
        from tracked import tracked_eval

        @tracked_eval(verbose=False, task_name="inner")
        def inner(k):
            for _ in range(3):
                yield float(k)

        def work(k):
            return dict(inner(k))

        @tracked_eval(verbose=False, task_name="outer")
        def outer():
            pool = mp.get_context("fork").Pool(2)
            for metrics in pool.map(work, range(4)):
                yield {"inner_score": metrics["score"]}
            pool.close()  # workers end on their own: one killed by terminate() may hold ClearML's semaphore
            pool.join()

        print("RESULT", dict(outer()))
        """,
        clearml_cache,
    )
    assert done.returncode == 0, done.stderr
    assert "'inner_score': 1.5" in done.stdout
    session = read_session(only_session(clearml_cache))
    assert set(session.scalars["Training Progress"]) == {"inner_score", "inner_score (running mean)"}
    own = {"inner_score", "inner_score_stderr"}  # the mean and its standard error
    assert not any(name.startswith("inner") and name not in own for name in session.single_values)
    assert session.single_values["num_examples"] == 4
    assert session.status == "completed"


def test_a_fork_while_a_task_is_being_created_does_not_deadlock_the_child(clearml_cache: Path) -> None:
    """A thread inside task creation (holding tracked's lock) while the process forks: the child still runs."""
    done = run_script(
        """
        import os, threading, time
        from clearml import Task
        from tracked import tracked_eval

        init = Task.init

        def slow_init(*args, **kwargs):
            time.sleep(1.5)
            return init(*args, **kwargs)

        Task.init = slow_init

        @tracked_eval(verbose=False)
        def evaluate(n):
            for i in range(n):
                yield float(i)

        thread = threading.Thread(target=evaluate, args=(3,))
        thread.start()
        time.sleep(0.5)
        pid = os.fork()
        if pid == 0:
            Task.init = init
            result = evaluate(2)
            os._exit(0 if result["num_examples"] == 2 else 3)
        _, status = os.waitpid(pid, 0)
        thread.join()
        print("CHILD", os.waitstatus_to_exitcode(status))
        """,
        clearml_cache,
    )
    assert done.returncode == 0, done.stderr
    assert "CHILD 0" in done.stdout
