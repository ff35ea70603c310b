"""Live runs, end to end in real processes: the journal survives kill -9, show follows a running run,
the progress bar and status lines, the chart streamed to a server while the run goes, a disk that fills up."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from support.clearml_server import StandInServer
from support.waiting import wait_until

from tracked import read_session

SESSION_LINE = re.compile(r"tracked: evaluate: offline session (\S+) \(watch it: tracked show ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMEOUT = 60


class Child:
    """A Python script run in a fresh interpreter, stdout and stderr going to files."""

    def __init__(self, folder: Path, name: str, code: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.script = folder / f"{name}.py"
        self.script.write_text(textwrap.dedent(code))
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(self.script), *args],
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                cwd=folder,
            )

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def session_dir(self) -> Path:
        """The offline session folder the child announced (waits for the line)."""

        def announced() -> str | None:
            match = SESSION_LINE.search(self.stdout)
            if match is None and self.proc.poll() is not None:
                pytest.fail(f"the child exited ({self.proc.returncode}) first:\n{self.stdout}\n{self.stderr}")
            return match.group(1) if match else None

        return Path(wait_until(announced, what="the session line"))

    def wait(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=TIMEOUT)


def journal_state(session: Path) -> dict[str, Any] | None:
    try:
        return json.loads((session / "tracked" / "0" / "run.json").read_text())
    except (OSError, ValueError):
        return None


def recorded(session: Path, at_least: int) -> int:
    """Wait until the run's journal holds more than ``at_least`` examples; how many it holds."""

    def count() -> int:
        state = journal_state(session)
        return int(state["count"]) if state and state["count"] > at_least else 0

    return wait_until(count, what=f"more than {at_least} examples in the journal")


def tracked_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracked", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def acc_of(i: int) -> float:
    return (i % 7) / 7


KILLED_RUN = """
    import time
    from tracked import tracked_eval

    @tracked_eval(flush_interval=0.2)
    def evaluate(dataset):
        for i in dataset:
            time.sleep(0.001)
            yield {"acc": (i % 7) / 7, "prediction": f"p{i}"}

    evaluate(list(range(100000)))
"""


def test_sigkill_mid_run_leaves_an_interrupted_session_with_its_examples(tmp_path: Path, children: list[Child]) -> None:
    """kill -9 mid-run: the session reads back as interrupted with every journaled example, its means and chart."""
    child = Child(tmp_path, "killed", KILLED_RUN)
    children.append(child)
    session_dir = child.session_dir()
    seen = recorded(session_dir, 300)
    # The chart is streamed after the journal, in the same flush (and only once ClearML's task, made in the
    # background, is there): kill once it has points too, as the chart's assertions below need.
    metrics = session_dir / "metrics.jsonl"
    wait_until(lambda: metrics.is_file() and "Training Progress" in metrics.read_text(errors="replace"), what="chart")
    child.kill()
    assert child.proc.returncode == -signal.SIGKILL

    session = read_session(session_dir)
    assert session.problems == []
    assert session.status == "interrupted"
    n = session.num_examples
    assert n is not None
    assert n >= seen
    assert n < 100000
    examples = session.examples()
    assert len(examples) == n
    assert list(examples.index) == list(range(n))
    assert examples["acc"].tolist() == [acc_of(i) for i in range(n)]
    assert examples["prediction"].tolist() == [f"p{i}" for i in range(n)]
    assert session.single_values["acc"] == pytest.approx(sum(acc_of(i) for i in range(n)) / n, rel=1e-12)
    assert session.single_values["num_examples"] == n

    progress = session.scalars["Training Progress"]
    points, means = progress["acc"], progress["acc (running mean)"]
    assert points
    assert means
    iterations = [i for i, _ in points]
    assert iterations == sorted(set(iterations))
    assert all(0 <= i < n for i in iterations)
    assert all(0 <= i < n for i, _ in means)

    shown = tracked_cli("show", str(session_dir))
    assert shown.returncode == 0, shown.stderr
    assert "interrupted" in shown.stdout
    assert f"{n:,} examples recorded before its process died" in shown.stdout
    compared = tracked_cli("compare", str(session_dir))
    assert compared.returncode == 0, compared.stderr
    assert "interrupted" in compared.stdout


GATED_RUN = """
    import sys, time
    from pathlib import Path
    from tracked import tracked_eval

    gate = Path(sys.argv[1])

    @tracked_eval(flush_interval=0.2)
    def evaluate(dataset):
        for i in dataset:
            if i == 20:
                while not gate.exists():
                    time.sleep(0.02)
            yield {"acc": i / 100, "prediction": f"p{i}"}

    evaluate(list(range(40)))
"""


def test_show_follows_a_running_session_from_another_process(tmp_path: Path, children: list[Child]) -> None:
    """tracked show on a session whose process is still going says running, with the examples so far; then completed."""
    gate = tmp_path / "gate"
    child = Child(tmp_path, "gated", GATED_RUN, str(gate))
    children.append(child)
    session_dir = child.session_dir()
    recorded(session_dir, 0)

    session = read_session(session_dir)
    assert session.status == "running"
    n = session.num_examples
    assert n is not None
    assert 0 < n <= 20
    assert session.examples()["acc"].tolist() == [i / 100 for i in range(n)]
    assert session.single_values["num_examples"] == n
    shown = tracked_cli("show", str(session_dir))
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"status    running  \([\d,]+ examples so far", shown.stdout), shown.stdout

    gate.touch()
    assert child.wait() == 0, child.stderr
    session = read_session(session_dir)
    assert session.status == "completed"
    assert session.num_examples == 40
    shown = tracked_cli("show", str(session_dir))
    assert shown.returncode == 0, shown.stderr
    assert "status    completed" in shown.stdout


BAR_RUN = """
    import time
    from tracked import tracked_eval

    @tracked_eval(progress="on", flush_interval=0.2)
    def evaluate(dataset):
        for i in dataset:
            time.sleep(0.03)
            if i == 25:
                print("USER LINE")
            yield {"acc": i / 50}

    evaluate(list(range(50)))
"""


def visible(line: str) -> str:
    """What a terminal shows for one line: each carriage-return segment overwrites from column 0."""
    screen: list[str] = []
    for segment in ANSI.sub("", line).split("\r"):
        for column, char in enumerate(segment):
            if column < len(screen):
                screen[column] = char
            else:
                screen.append(char)
    return "".join(screen).rstrip()


def test_progress_bar_on_a_terminal_keeps_user_lines_whole(tmp_path: Path) -> None:
    """In a pseudo-terminal: a done/total bar is drawn, the summary follows, and a user's print is a line of its own."""
    import fcntl
    import termios

    script = tmp_path / "bar.py"
    script.write_text(textwrap.dedent(BAR_RUN))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
            cwd=tmp_path,
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"the child did not finish:\n{b''.join(chunks).decode(errors='replace')}")
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side of the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    output = b"".join(chunks).decode("utf-8", errors="replace")

    assert re.search(r"\b\d+/50\b", output), output
    assert "tracked: evaluate completed in" in output
    lines = output.replace("\r\n", "\n").split("\n")
    user = [line for line in lines if "USER LINE" in line]
    assert len(user) == 1, user
    assert visible(user[0]) == "USER LINE", repr(user[0])


STATUS_RUN = """
    import time
    from tracked import tracked_eval

    @tracked_eval(progress="on", status_interval=0.3, flush_interval=0.2)
    def evaluate(dataset):
        for i in dataset:
            time.sleep(0.03)
            yield {"acc": 0.5}

    evaluate(list(range(50)))
"""


def test_status_lines_when_stderr_is_a_file(tmp_path: Path, children: list[Child]) -> None:
    """stderr not a terminal: plain 'tracked: evaluate: ... examples' lines every status_interval, no \\r."""
    child = Child(tmp_path, "status", STATUS_RUN)
    children.append(child)
    assert child.wait() == 0, child.stderr
    raw = child.err.read_bytes()
    assert b"\r" not in raw
    lines = [line for line in raw.decode().splitlines() if line.startswith("tracked: evaluate:")]
    assert len(lines) >= 2, raw
    assert all("examples" in line for line in lines)
    pattern = re.compile(r"^tracked: evaluate: [\d,]+/50 examples \(\d+%\), [\d,.]+ ex/s, elapsed \d\d:\d\d")
    assert all(pattern.match(line) for line in lines), lines
    assert any("acc=0.5000" in line for line in lines), lines


SERVER_RUN = """
    import json, sys, time
    from pathlib import Path
    from tracked import tracked_eval

    marker = Path(sys.argv[1])

    @tracked_eval(flush_interval=0.3, server_timeout=5)
    def evaluate(dataset):
        for i in dataset:
            if i == 0:  # ClearML makes the task while the first examples are scored: from then on, 30 more
                from clearml import Task

                while Task.current_task() is None:
                    time.sleep(0.01)
            time.sleep(0.05)
            if i == 30:
                marker.touch()
            yield {"acc": (i % 4) / 4}

    result = evaluate(list(range(40)))
    print("RESULT", json.dumps({"task_id": result.task_id, "acc": result["acc"]}))
"""


def progress_batches(server: StandInServer) -> list[Any]:
    """events.add_batch requests carrying Training Progress scalars."""
    found = []
    for record in server.calls("events.add_batch"):
        events = record.body if isinstance(record.body, list) else [record.body]
        if any(isinstance(e, dict) and e.get("metric") == "Training Progress" for e in events):
            found.append(record)
    return found


def test_chart_streams_to_the_server_while_the_run_goes(tmp_path: Path, children: list[Child]) -> None:
    """With a server, Training Progress points arrive while the run goes (once ClearML has made the task, which
    the evaluation waits for here); each iteration once; the task completes."""
    marker = tmp_path / "marker"
    with StandInServer() as server:
        child = Child(tmp_path, "online", SERVER_RUN, str(marker), env=server.env())
        children.append(child)

        def marker_seen() -> float | None:
            if child.proc.poll() is not None and not marker.exists():
                pytest.fail(f"the child exited first:\n{child.stdout}\n{child.stderr}")
            return time.monotonic() if marker.exists() else None

        marker_time = wait_until(marker_seen, what="example 30")
        assert child.wait() == 0, child.stderr
        result = json.loads(child.stdout.split("RESULT ", 1)[1])

        batches = progress_batches(server)
        assert batches
        assert batches[0].time < marker_time
        task_id = result["task_id"]
        progress = [e for e in server.events(task_id, "training_stats_scalar") if e["metric"] == "Training Progress"]
        acc = [e["iter"] for e in progress if e["variant"] == "acc"]
        assert len(acc) == len(set(acc))
        assert sorted(acc) == list(range(40))
        means = [e["iter"] for e in progress if e["variant"] == "acc (running mean)"]
        assert sorted(means) == list(range(40))
        assert result["acc"] == pytest.approx(sum((i % 4) / 4 for i in range(40)) / 40)
        assert server.tasks[task_id]["status"] == "completed"


FULL_DISK_RUN = """
    import json, resource, signal, time, warnings
    from tracked import TrackedWarning, tracked_eval

    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    @tracked_eval(flush_interval=0.1, verbose=False)
    def evaluate(dataset):
        for i in dataset:
            if i % 100 == 0:
                time.sleep(0.0005)
            yield {"acc": (i % 5) / 4, "prediction": f"p{i}"}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(list(range(50_000)))
    print("RESULT", json.dumps({
        "acc": result["acc"],
        "num_examples": result["num_examples"],
        "warnings": [str(w.message) for w in caught if issubclass(w.category, TrackedWarning)],
        "other": [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, TrackedWarning)],
    }))
"""


def test_a_full_disk_during_the_run_is_one_warning(tmp_path: Path, children: list[Child]) -> None:
    """Writes failing with EFBIG while the run goes: the evaluation finishes, exact result, one journal warning."""
    child = Child(tmp_path, "full", FULL_DISK_RUN)
    children.append(child)
    assert child.wait() == 0, child.stdout + child.stderr
    result = json.loads(child.stdout.split("RESULT ", 1)[1])
    assert result["num_examples"] == 50_000
    assert result["acc"] == pytest.approx(sum((i % 5) / 4 for i in range(50_000)) / 50_000, rel=1e-12)
    about_journal = [w for w in result["warnings"] if "journal" in w]
    assert len(about_journal) == 1, result["warnings"]
    assert "File too large" in about_journal[0], about_journal
    # ClearML's session files hit the same limit: one more warning (ClearML, then the local save, failed),
    # naming each problem once, however many flushes met it.
    others = [w for w in result["warnings"] if "journal" not in w]
    assert len(others) <= 1, others
    for warning in others:
        assert warning.count("ClearML streaming the progress chart failed") <= 1, warning
