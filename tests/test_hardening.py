"""Hardening, round two: consoles that cannot print, daemon threads at exit, forks, overflow, one result per thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracked import read_session, tracked_eval


def run_script(
    code: str, cache: Path, *, env: dict[str, str] | None = None, shell_tail: str = ""
) -> subprocess.CompletedProcess[str]:
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
    (folder,) = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    return folder


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


def test_huge_values_have_exact_means_and_the_session_stays_valid_json() -> None:
    """1e308 values: the mean is 1e308, alternating signs give 0, no inf/nan is ever written as a JSON number."""

    @tracked_eval(verbose=False, max_points=10)
    def evaluate(dataset: list[float]) -> Iterator[dict[str, float]]:
        for i, v in enumerate(dataset):
            yield {"big": v, "alternating": v if i % 2 else -v}

    result = evaluate([1e308] * 1000)
    assert result["big"] == 1e308
    assert result["alternating"] == 0.0
    folder = result.session_dir
    assert folder is not None
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} written as a JSON number"))
    chart = read_session(folder).scalars["Training Progress"]
    assert [v for _, v in chart["big"]] == [1e308] * 10
    assert chart["big (running mean)"][-1][1] == 1e308
    assert chart["alternating"][-1][1] == 0.0


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


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("events.add_batch", "no answer within 10 s"),  # reporting
        ("tasks.create", "did not create the task within 10 s"),  # logins answered, task creation not
        ("auth.login", None),  # debug.ping answered, the API not: an offline session instead
    ],
)
def test_a_server_that_stops_answering_does_not_hold_the_result(
    tmp_path: Path, endpoint: str, problem: str | None
) -> None:
    """One endpoint never answers: the call still returns its full result, saved, within its deadline."""
    from clearml_server import StandInServer

    script = tmp_path / "stalled.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            from tracked import tracked_eval

            @tracked_eval(flush_interval=0.2, server_timeout=1)
            def evaluate(dataset):
                for x in dataset:
                    yield float(x)

            result = evaluate(list(range(100)))
            print("RETURNED", json.dumps({"score": result["score"], "saved_to": str(result.saved_to),
                                          "session_dir": str(result.session_dir)}), flush=True)
            """
        ),
        encoding="utf-8",
    )
    with StandInServer(hang={endpoint}) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        env.update(HOME=str(tmp_path), CLEARML_CACHE_DIR=str(tmp_path / "cache"), **server.env())
        proc = subprocess.Popen(
            [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            returned = next((line for line in proc.stdout if line.startswith("RETURNED")), "")
        finally:
            proc.kill()
            stderr = proc.stderr.read()
            proc.wait(30)
    assert returned, "the call never returned"
    result = json.loads(returned.split(" ", 1)[1])
    assert result["score"] == 49.5
    if problem is None:
        assert "did not answer" in stderr
        assert (Path(result["session_dir"]) / "metrics.jsonl").is_file()  # ClearML's offline session
    else:
        saved = json.loads((Path(result["saved_to"]) / "metrics.json").read_text())
        assert problem in " ".join(saved["problems"])


def test_a_run_that_cannot_start_tracking_still_returns_its_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever breaks tracked's start, a generator evaluation still returns an EvalResult with its means."""
    import tracked._call

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broken start")

    monkeypatch.setattr(tracked._call, "describe_call", broken)

    @tracked_eval(verbose=False)
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    with pytest.warns(UserWarning, match="could not start tracking"):
        result = evaluate([1.0, 2.0, 3.0])
    assert result["score"] == 2.0
    assert result["num_examples"] == 3


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


def test_infinite_intervals_are_refused_when_decorating() -> None:
    """flush_interval=inf (or nan, or 0) is a clear error at decoration, not a dead live thread."""
    from tracked._options import SettingsError

    for bad in (float("inf"), float("nan"), 0, -1):
        with pytest.raises(SettingsError, match="flush_interval"):
            tracked_eval(flush_interval=bad)


def test_control_characters_in_names_and_details_are_shown_not_obeyed(capsys: pytest.CaptureFixture[str]) -> None:
    """ESC, BEL and CR in a metric name or a detail reach the console and `tracked show` escaped."""
    from tracked.cli import main

    @tracked_eval(task_name="evil\x1b]0;pwned\x07")
    def evaluate(dataset: list[float]) -> Iterator[dict[str, object]]:
        for v in dataset:
            yield {"acc\x1b[31m": v, "prediction": "ok\rHIDDEN\x1b[2J"}

    result = evaluate([1.0])
    main(["show", str(result.session_dir)])
    main(["compare", str(result.session_dir), "--format", "markdown"])
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\r" not in out
    assert "\\x1b" in out


def test_resume_never_mixes_two_models() -> None:
    """A stopped run of one model is not resumed by a call with another model (a path or an object)."""

    @tracked_eval(verbose=False, resume=True)
    def evaluate(model: str, dataset: list[int]) -> Iterator[float]:
        for i in dataset:
            if model == "a.pt" and i == 5:
                raise KeyboardInterrupt
            yield 1.0 if model == "b.pt" else 0.0

    with pytest.raises(KeyboardInterrupt):
        evaluate("a.pt", list(range(10)))
    result = evaluate("b.pt", list(range(10)))
    assert result["score"] == 1.0
    assert result["num_examples"] == 10


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


@pytest.mark.parametrize(
    "name",
    ["secrets", "tokens", "passwords", "hftoken", "openaikey", "creds", "pw", "dsn", "database_url", "webhook",
     "authorization", "session_id", "hfToken", "DB_PASSWORD", "clientSecret"],
)  # fmt: skip
def test_secret_looking_argument_names_are_redacted(name: str) -> None:
    """Names are matched by their parts (case, separators, plurals ignored): their values are never written."""
    from tracked._call import simple_params

    assert simple_params({name: "hunter2-very-secret"}, skip=set()) == {name: "<redacted>"}


def test_ordinary_names_are_kept_and_url_passwords_are_redacted() -> None:
    """max_tokens, monkey, sessions_dir stay readable; a password inside a URL argument is redacted."""
    from tracked._call import simple_params

    kept = simple_params({"max_tokens": 256, "monkey": "george", "sessions_dir": "/data"}, skip=set())
    assert kept == {"max_tokens": "256", "monkey": "george", "sessions_dir": "/data"}
    url = simple_params({"endpoint": "https://user:PASS1234@host/db"}, skip=set())
    assert url == {"endpoint": "https://user:<redacted>@host/db"}


SCALAR = '[{"type": "training_stats_scalar", "metric": "T", "variant": "v", "iter": ITER, "value": VALUE}]'


@pytest.mark.parametrize(
    ("what", "task_json", "metrics_line"),
    [
        ("nested JSON", None, "[" * 100_000 + "]" * 100_000),
        ("hyperparams as a list", '{"id": "x", "name": "n", "hyperparams": []}', None),
        ("a string where a mapping belongs", '{"id": "x", "name": "n", "hyperparams": "oops"}', None),
        ("iter 1e999", None, SCALAR.replace("ITER", "1e999").replace("VALUE", "1")),
        ("inf value", None, SCALAR.replace("ITER", "1").replace("VALUE", "Infinity")),
        ("task.json not a mapping", "[1, 2]", None),
    ],
)  # fmt: skip
def test_malformed_sessions_are_one_line_each_and_good_runs_still_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, task_json: str | None, metrics_line: str | None
) -> None:
    """Each hostile session: one stderr line (exit 2) or shown as far as it reads; the good run beside it is shown."""
    from tracked.cli import main

    @tracked_eval(verbose=False, task_name="good")
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    good = evaluate([1.0, 2.0]).session_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "task.json").write_text(task_json or '{"id": "bad", "name": "bad"}', encoding="utf-8")
    if metrics_line is not None:
        (bad / "metrics.jsonl").write_text(metrics_line + "\n", encoding="utf-8")
    capsys.readouterr()
    for command in ("show", "compare"):
        code = main([command, str(bad), str(good)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, what
        assert "good" in out, what
        assert code in (0, 2), what


def test_a_path_that_does_not_exist_never_waits_for_a_configured_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server configured but not answering: a missing local path is one line at once; a task id, one line."""
    from tracked.cli import main

    monkeypatch.setenv("CLEARML_API_HOST", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "A" * 20)
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "S" * 30)
    assert main(["show", "/no/such/path"]) == 2
    assert main(["compare", "./typo.zip"]) == 2
    assert main(["show", "0123456789abcdef"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3
    assert "did not answer" in err


def test_a_metric_per_example_is_bounded_and_stays_small() -> None:
    """yield {example_id: score}: 1,000 metric names, then details; one warning; the examples stay sparse."""
    import resource

    n = 20_000

    @tracked_eval(verbose=False)
    def evaluate(dataset: range) -> Iterator[dict[str, float]]:
        for i in dataset:
            yield {f"example-{i}": 1.0, "acc": float(i % 2)}

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.warns(UserWarning, match="beyond the first 1000 metric names") as caught:
        result = evaluate(range(n))
    assert sum("metric names" in str(w.message) for w in caught) == 1
    assert result["acc"] == 0.5
    assert result["num_examples"] == n
    frame = result.examples
    assert len(frame) == n
    assert frame.loc[n - 1, "(more metrics)"] == "example-19999=1.0"  # one column for every name past the limit
    assert len(frame.columns) == 1000 + 1
    assert frame["example-0"].dtype.name.startswith("Sparse")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 1500  # 20,000 x 20,000 dense floats would be 3.2 GB


# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would count the forking pytest process.
PEAK = (
    "import atexit, re, sys; from tracked.cli import main; atexit.register(lambda: print('PEAK_MB', "
    "int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024, file=sys.stderr)); "
    "sys.exit(main(sys.argv[1:]))"
)


def _cli_in_a_child(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """``tracked ARGS`` in a fresh process: exit code, stdout, stderr and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    peak = int(done.stderr.rsplit("PEAK_MB", 1)[1])
    return done.returncode, done.stdout, done.stderr, peak


def test_hostile_sizes_are_refused_or_capped_and_the_good_run_still_shown(tmp_path: Path) -> None:
    """A zip bomb is one line; an oversized file is read up to the cap; a 64 MB line is skipped; RSS stays small."""
    import zipfile

    @tracked_eval(verbose=False, task_name="good")
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    good = str(evaluate([1.0, 2.0]).session_dir)
    task_json = '{"id": "bad", "name": "bad"}'
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("s/task.json", task_json)
        archive.writestr("s/metrics.jsonl", b" " * (256 * 2**20))
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "task.json").write_text(task_json)
    with (huge / "metrics.jsonl").open("w") as file:
        file.write("[" + " " * (64 * 2**20) + "]\n")  # one 64 MB line
        line = SCALAR.replace("ITER", "1").replace("VALUE", "0.5") + "\n"
        file.write(line * (12 * 2**20 // len(line)))  # 12 MB of ordinary lines

    code, out, err, _ = _cli_in_a_child(["show", str(bomb), good])
    assert code == 2
    assert "bomb.zip: refused, s/metrics.jsonl would expand" in err
    assert "good" in out
    code, out, err, peak = _cli_in_a_child(["show", str(huge), good], env={"TRACKED_MAX_READ_MB": "8"})
    assert code == 2
    assert "line 1: longer than 16 MB, skipped" in err
    assert "only its first 8 MB read" in err
    assert "good" in out
    assert "Traceback" not in err
    _, _, _, baseline = _cli_in_a_child(["show", good])
    assert peak < baseline + 64, (peak, baseline)  # the 64 MB line and the 76 MB file were never held whole


LARGE_DETAILS = """
    import re
    from tracked import tracked_eval

    def peak():
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) // 1024

    @tracked_eval(verbose=False, flush_interval=0.2)
    def evaluate(n):
        for i in range(n):
            yield {"score": float(i), "answer": str(i % 10) * 2**20}  # a different 1 MB text each

    base = peak()
    result = evaluate(N)
    print("GROWTH", peak() - base)
    print("SESSION", result.session_dir)
    print("CELL", result.examples["answer"][3][-80:])
"""


def test_large_details_keep_the_runs_memory_bounded(clearml_cache: Path) -> None:
    """300 details of 1 MB: memory grows far less than 300 MB; the full texts are on disk, previews marked."""
    done = run_script(LARGE_DETAILS.replace("N)", "300)"), clearml_cache)
    assert done.returncode == 0, done.stderr
    out = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert int(out["GROWTH"]) < 150, out["GROWTH"]
    assert out["CELL"].endswith("[1,048,576 characters in all; the full text is in long-details.jsonl]")
    session = Path(out["SESSION"])
    lines = (session / "tracked" / "0" / "long-details.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300
    assert json.loads(lines[3]) == [3, "answer", "3" * 2**20]


def test_a_journal_with_lying_batch_lines_reads_without_crashing(tmp_path: Path, clearml_cache: Path) -> None:
    """Overlapping or negative batch blocks in details.jsonl: each a problem line; the examples still read."""
    from tracked import batch

    @tracked_eval(verbose=False, task_name="lying")
    def evaluate() -> Iterator[object]:
        yield batch(score=[1.0, 2.0, 3.0, 4.0], answer=["a", "b", "c", "d"])

    folder = evaluate().session_dir
    assert folder is not None
    details = folder / "tracked" / "0" / "details.jsonl"
    lines = [
        '{"start": 2, "n": 3, "columns": {"answer": ["x", "y", "z"]}}',
        '{"start": -3, "n": 1, "columns": {"answer": ["w"]}}',
        '{"start": 0, "n": 9, "columns": {"answer": ["v"]}}',
    ]
    details.write_text(details.read_text(encoding="utf-8") + "\n".join(lines) + "\n", encoding="utf-8")
    state = json.loads((folder / "tracked" / "0" / "run.json").read_text())
    state["details"]["bytes"] = details.stat().st_size
    (folder / "tracked" / "0" / "run.json").write_text(json.dumps(state))
    session = read_session(folder)
    assert session.examples()["answer"].tolist() == ["a", "b", "c", "d"]  # the first details of each example
    assert sum("unreadable line" in p for p in session.problems) == 2


def test_a_malformed_read_limit_is_one_warning_and_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracked.session import read_limit

    for raw in ("abc", "0", "-1", "nan"):
        monkeypatch.setenv("TRACKED_MAX_READ_MB", raw)
        with pytest.warns(UserWarning, match="TRACKED_MAX_READ_MB"):
            assert read_limit() == 256 * 2**20
