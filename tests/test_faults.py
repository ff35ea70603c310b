"""Faults around ClearML: one warning, the result returned, the run saved somewhere readable."""

from __future__ import annotations

import json
import os
import signal
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

ROOT = Path(__file__).resolve().parents[1]


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
    assert list(pd.read_pickle(folder / "examples.pkl")["acc"]) == [1.0, 0.0]
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


def run_script(code: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLEARML_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=timeout
    )


def only_session(cache: Path) -> Path:
    (folder,) = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    return folder


def test_sigterm_saves_the_partial_run_then_terminates(clearml_cache: Path) -> None:
    """SIGTERM mid-evaluation: the run is saved as stopped, then the process dies of SIGTERM as it would."""
    done = run_script(
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


def test_exit_with_an_open_run_closes_it(clearml_cache: Path) -> None:
    """A lazy run still open when the interpreter exits is saved as stopped, and the exit does not hang."""
    done = run_script(
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
