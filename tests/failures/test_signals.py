"""Signals and exits: SIGTERM or SIGHUP mid-run, a second SIGTERM, the interpreter exiting with a run still open;
ClearML's process hooks left as they were; the journal durable up to the last example (all a SIGKILL leaves)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT
from support.scripts import only_session, run_script

from tracked import read_session, tracked_eval


def run_code(code: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c CODE`` with the checkout on ``PYTHONPATH`` and ``CLEARML_CACHE_DIR=cache``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLEARML_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_sigterm_saves_the_partial_run_then_terminates(clearml_cache: Path) -> None:
    """SIGTERM mid-evaluation: the run is saved as stopped, then the process dies of SIGTERM as it would."""
    done = run_code(
        """
        import os, signal
        from tracked import tracked_eval

        @tracked_eval
        def evaluate():
            for i in range(10):
                if i == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield float(i)

        evaluate()
        print("not reached")
        """,
        clearml_cache,
    )
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
    assert "not reached" not in done.stdout
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    assert session.single_values["num_examples"] == 3


SIGNALLED = """
    import asyncio, signal, sys, time
    from tracked import tracked_eval

    FORM = sys.argv[1]

    def ready(i):
        if i == 50:
            print("READY", flush=True)
        time.sleep(0.002)

    if FORM == "generator":
        @tracked_eval(verbose=False)
        def evaluate():
            for i in range(10**9):
                ready(i)
                yield float(i)
        evaluate()
    elif FORM == "lazy":
        @tracked_eval(verbose=False, lazy=True)
        def evaluate():
            for i in range(10**9):
                yield float(i)
        for i, _ in enumerate(evaluate()):
            ready(i)
    elif FORM == "async":
        @tracked_eval(verbose=False)
        async def evaluate():
            for i in range(10**9):
                ready(i)
                await asyncio.sleep(0)
                yield float(i)
        asyncio.run(evaluate())
    elif FORM == "slow-end":
        from clearml import Task
        close = Task.close
        def slow_close(self):
            print("CLOSING", flush=True)
            time.sleep(1.0)
            close(self)
        Task.close = slow_close

        @tracked_eval(verbose=False)
        def evaluate():
            for i in range(10**9):
                ready(i)
                yield float(i)
        evaluate()
    print("not reached", flush=True)
"""


def _default_signals() -> None:
    import signal

    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def _signalled(
    cache: Path, form: str, signum: int, second_after: float | None = None
) -> subprocess.CompletedProcess[str]:
    import time

    script = cache.parent / "signalled.py"
    script.write_text(textwrap.dedent(SIGNALLED), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), form], env={**os.environ, "CLEARML_CACHE_DIR": str(cache)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_signals,  # as a terminal starts it: under nohup, SIGHUP comes in ignored (and stays so)
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY"):
            break
    proc.send_signal(signum)
    if second_after is not None:
        for line in proc.stdout:
            if line.startswith("CLOSING"):
                break
        time.sleep(second_after)
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("form", ["generator", "lazy", "async"])
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_leave_a_stopped_run_for_every_form(clearml_cache: Path, form: str, signame: str) -> None:
    """SIGTERM or SIGHUP during a generator, lazy or async evaluation: a stopped run with the examples so far."""
    import signal

    signum = getattr(signal, signame)
    done = _signalled(clearml_cache, form, signum)
    assert done.returncode == -signum, done.stdout + done.stderr
    assert "not reached" not in done.stdout
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    n = int(session.single_values["num_examples"])
    assert n >= 50
    assert session.single_values["score"] == pytest.approx((n - 1) / 2)


def test_a_second_sigterm_waits_until_the_run_is_written(clearml_cache: Path) -> None:
    """Two SIGTERMs, the second during the end-of-run write: the session is still whole (status, values, zip)."""
    import signal

    done = _signalled(clearml_cache, "slow-end", signal.SIGTERM, second_after=0.3)
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
    folder = only_session(clearml_cache)
    assert folder.with_suffix(".zip").is_file()
    session = read_session(folder)
    assert session.status == "stopped"
    assert not session.problems
    assert session.single_values["num_examples"] >= 50
    assert "Final Metrics" in session.tables


def test_exit_with_an_open_run_closes_it(clearml_cache: Path) -> None:
    """A lazy run still open when the interpreter exits is saved as stopped, and the exit does not hang."""
    done = run_code(
        """
        from tracked import tracked_eval

        @tracked_eval(lazy=True)
        def evaluate():
            for i in range(100):
                yield float(i)

        gen = evaluate()
        for _ in range(7):
            next(gen)
        """,
        clearml_cache,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    assert session.single_values["num_examples"] == 7


def test_a_daemon_thread_still_yielding_at_exit_is_saved_as_stopped(clearml_cache: Path) -> None:
    """The exit hook stops taking examples before it counts them: no error, a stopped run with what was yielded."""
    done = run_script(
        """
        import threading, time
        from tracked import tracked_eval

        started = threading.Event()

        @tracked_eval(verbose=False)
        def evaluate():
            i = 0
            while True:  # still yielding when the interpreter exits (a few hundred thousand examples)
                i += 1
                if i == 1000:
                    started.set()
                if i % 1000 == 0:
                    time.sleep(0.001)
                yield {"acc": float(i % 2), "loss": 0.5}

        threading.Thread(target=evaluate, daemon=True).start()
        started.wait(60)
        time.sleep(1)
        """,
        clearml_cache,
    )
    assert done.returncode == 0, done.stderr
    assert "TypeError" not in done.stderr
    assert "Traceback" not in done.stderr
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    n = int(session.single_values["num_examples"])
    assert n > 0
    assert session.single_values["loss"] == 0.5
    assert session.single_values["acc"] == pytest.approx(sum(i % 2 for i in range(1, n + 1)) / n)


def test_process_hooks_are_left_as_they_were() -> None:
    """Task.init's excepthook, signal handlers, sys.exit, streams and seeding do not stay behind."""
    import os
    import random
    import signal
    import sys

    environ = dict(os.environ)
    before = (sys.excepthook, sys.exit, sys.stdout, sys.stderr, signal.getsignal(signal.SIGINT),
              signal.getsignal(signal.SIGTERM))  # fmt: skip
    random.seed(42)
    expected = random.random()
    random.seed(42)

    @tracked_eval
    def evaluate() -> Iterator[float]:
        yield random.random()

    result = evaluate()
    assert result["score"] == expected  # not re-seeded with ClearML's 1337
    after = (sys.excepthook, sys.exit, sys.stdout, sys.stderr, signal.getsignal(signal.SIGINT),
             signal.getsignal(signal.SIGTERM))  # fmt: skip
    assert after == before
    assert dict(os.environ) == environ  # no CLEARML_OFFLINE_MODE / PROC_MASTER_ID left for child processes


def test_a_slow_evaluation_is_durable_up_to_its_last_example(tmp_path: Path) -> None:
    """One example a second: the journal holds the example just yielded, not one behind."""
    import time

    gate = tmp_path / "gate"

    @tracked_eval(verbose=False, flush_interval=0.05)
    def evaluate(dataset: list[float]) -> Iterator[float]:
        for value in dataset:
            yield value
            deadline = time.monotonic() + 30
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            gate.unlink(missing_ok=True)

    seen: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(seen) < 2:
            for state in Path(os.environ["CLEARML_CACHE_DIR"]).glob("offline/*/tracked/0/run.json"):
                count = json.loads(state.read_text())["count"]
                if count > len(seen):
                    seen.append(count)
                    gate.touch()
            time.sleep(0.02)
        gate.touch()  # the last example goes on at once

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = evaluate([1.0, 2.0, 3.0])
    watcher.join()
    assert seen == [1, 2]  # each example durable while the evaluation still waits after it
    assert result["num_examples"] == 3


def test_a_run_ended_by_the_exit_hook_skips_the_artifact_its_journal_holds_the_examples(clearml_cache: Path) -> None:
    """The process is going: the end is kept short (no examples artifact); every example is in the journal."""
    done = run_code(
        """
        from tracked import tracked_eval

        @tracked_eval(lazy=True, verbose=False)
        def evaluate():
            for i in range(100):
                yield {"acc": float(i % 2), "answer": f"a{i}"}

        gen = evaluate()
        for _ in range(7):
            next(gen)
        """,
        clearml_cache,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    artifacts = (session.task.get("execution") or {}).get("artifacts") or []
    assert [a.get("key") for a in artifacts] == []
    examples = session.examples()
    assert list(examples["answer"]) == [f"a{i}" for i in range(7)]
