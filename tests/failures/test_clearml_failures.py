"""ClearML, its server or tracked's own start failing: one warning, the result returned, the run saved somewhere
readable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tracked import TrackedWarning, read_session, tracked_eval


@tracked_eval
def evaluate(threshold: float = 0.5) -> Iterator[dict[str, float]]:
    yield {"acc": 1.0}
    yield {"acc": 0.0}


def run_with_warnings() -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate()
    return result, [str(w.message) for w in caught if issubclass(w.category, TrackedWarning)]


def assert_saved_locally(result: object, cache: Path) -> None:
    folder = result.saved_to  # type: ignore[attr-defined]
    assert folder is not None
    assert folder.parent == cache / "tracked-runs"
    record = json.loads((folder / "metrics.json").read_text())
    assert record["metrics"]["acc"] == 0.5
    assert record["metrics"]["num_examples"] == 2
    assert list(pd.read_parquet(folder / "examples.parquet")["acc"]) == [1.0, 0.0]
    assert not list(folder.glob("*.pkl"))  # never a pickle
    assert "acc" in (folder / "summary.txt").read_text()


def test_task_creation_failure(monkeypatch: pytest.MonkeyPatch, clearml_cache: Path) -> None:
    """Task.init raising: one warning naming the cause and the folder; the result; the run saved locally."""
    from clearml import Task

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("clearml is down")

    monkeypatch.setattr(Task, "init", broken)
    result, messages = run_with_warnings()
    assert len(messages) == 1
    assert "clearml is down" in messages[0]
    assert str(result.saved_to) in messages[0]  # type: ignore[attr-defined]
    assert result["acc"] == 0.5  # type: ignore[index]
    assert_saved_locally(result, clearml_cache)


@pytest.mark.parametrize(
    ("owner", "method"),
    [
        ("Logger", "report_single_value"),
        ("Logger", "report_table"),
        ("Logger", "report_text"),
        ("Logger", "flush"),
        ("Task", "upload_artifact"),
        ("Task", "update_parameters"),
        ("Task", "set_user_properties"),
        ("Task", "close"),
    ],
)
def test_report_or_close_failure(monkeypatch: pytest.MonkeyPatch, clearml_cache: Path, owner: str, method: str) -> None:
    """Any ClearML report call, or close, raising: one warning, the result, the run saved locally."""
    import clearml

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(f"{method} broke")

    monkeypatch.setattr(getattr(clearml, owner), method, broken)
    result, messages = run_with_warnings()
    assert len(messages) == 1, messages
    assert f"{method} broke" in messages[0]
    assert result["acc"] == 0.5  # type: ignore[index]
    assert_saved_locally(result, clearml_cache)


def test_clearml_failure_is_one_warning_and_the_result_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    """If ClearML cannot create a task, the evaluation still runs and returns its metrics."""
    from clearml import Task

    def broken_init(*args: object, **kwargs: object) -> None:
        raise RuntimeError("clearml is down")

    monkeypatch.setattr(Task, "init", broken_init)

    @tracked_eval
    def evaluate() -> Iterator[float]:
        yield 1.0
        yield 0.0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate()
    ours = [w for w in caught if issubclass(w.category, TrackedWarning)]
    assert len(ours) == 1
    assert "clearml is down" in str(ours[0].message)
    assert result["score"] == 0.5
    assert result.task_id is None


def test_clearml_report_failure_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A report call that raises inside ClearML costs a warning, not the result."""
    from clearml import Logger

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Logger, "report_single_value", broken)

    @tracked_eval
    def evaluate() -> dict[str, float]:
        return {"accuracy": 0.9}

    with pytest.warns(TrackedWarning, match="disk full"):
        result = evaluate()
    assert result["accuracy"] == 0.9
    assert result.session_dir is not None  # the task was still closed and saved


def test_local_save_failing_too_is_still_one_warning_at_the_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Even with ClearML and the local folder both failing, the evaluation returns its result.

    The journal's folder fails at the start: that is said then (a crash would lose the run),
    and the end's failures are the one warning at the end.
    """
    from clearml import Task

    monkeypatch.setattr(Task, "init", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down")))
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(blocker))  # a file where the folder would go
    result, messages = run_with_warnings()
    assert len(messages) == 2, messages
    assert "cannot write the run's journal" in messages[0]
    assert "failed too" in messages[1]
    assert result["acc"] == 0.5  # type: ignore[index]


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)

    def close(self) -> None:
        self.sock.close()
        for client in self.clients:
            client.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("server", ["closed port", "silent server"])
def test_unreachable_server_falls_back_to_offline(monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    """Server configured but not answering: within server_timeout, a warning and an offline session."""
    silent = SilentServer() if server == "silent server" else None
    port = silent.port if silent else closed_port()
    monkeypatch.setenv("CLEARML_API_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "ACCESSKEY1234567")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "SECRETKEY7654321")
    monkeypatch.setenv("TRACKED_SERVER_TIMEOUT", "1")
    try:
        with pytest.warns(TrackedWarning, match="did not answer") as caught:
            result = evaluate()
    finally:
        if silent:
            silent.close()
    assert "offline session" in str(caught[0].message)
    assert result.session_dir is not None
    assert read_session(result.session_dir).single_values["acc"] == 0.5


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
    from support.clearml_server import StandInServer

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
    import tracked.common.call

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broken start")

    monkeypatch.setattr(tracked.common.call, "describe_call", broken)

    @tracked_eval(verbose=False)
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    with pytest.warns(UserWarning, match="could not start tracking"):
        result = evaluate([1.0, 2.0, 3.0])
    assert result["score"] == 2.0
    assert result["num_examples"] == 3
