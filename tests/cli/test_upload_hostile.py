"""`tracked upload` against a hostile or stalling server, and sessions that cannot say how they ended.

The real command (``python -m tracked upload``) and the real ClearML SDK, talking to
``support.clearml_server.StandInServer`` in this process, told to stall, delay or garble an endpoint; what the
server holds afterwards is read back. No timed assertions beyond a generous bound.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.clearml_server import StandInServer
from support.uploads import child_env, copy_of, record, start_upload, upload

RUN = textwrap.dedent(
    """
    import glob, json, os, sys
    from tracked import tracked_eval

    mode = sys.argv[1]

    def journaled(count):
        for path in glob.glob(os.path.join(os.environ["CLEARML_CACHE_DIR"], "offline/*/tracked/0/run.json")):
            try:
                if json.loads(open(path).read()).get("count", 0) >= count:
                    return True
            except ValueError:
                pass
        return False

    @tracked_eval(project="hostile uploads", task_name=f"run {mode}", verbose=False, flush_interval=0.02)
    def evaluate(dataset):
        for i, value in enumerate(dataset):
            if mode == "died" and i == 8:
                while not journaled(5):  # the journal holds examples; then the process dies mid-run
                    pass
                os._exit(9)
            yield {"acc": value, "prediction": f"answer {i}"}

    evaluate([(i % 4) / 4 for i in range(12)])
    """
)


def write_session(home: Path, mode: str) -> Path:
    """An offline session (folder, its zip beside it) written by a real run in a child process."""
    done = subprocess.run(
        [sys.executable, "-c", RUN, mode], env=child_env(home, None), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == (9 if mode == "died" else 0), done.stdout + done.stderr
    (task_json,) = (home / "cache" / "offline").glob("*/task.json")
    return task_json.parent


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_session(tmp_path_factory.mktemp("completed"), "completed")


@pytest.fixture(scope="module")
def died(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose process died mid-run (os._exit): interrupted, its journal holding the examples so far."""
    return write_session(tmp_path_factory.mktemp("died"), "died")


STALLS = ("events.add_batch", "events.get_task_events", "files.upload")


def test_a_server_that_stops_answering_is_given_up_and_the_task_marked_failed(completed: Path, tmp_path: Path) -> None:
    """events.add_batch, events.get_task_events or the artifact upload never answered: the upload ends (well
    within 120 s), one stderr line, exit code 1, and the task it made is failed, not left in progress."""
    servers = {endpoint: StandInServer(hang={endpoint}).start() for endpoint in STALLS}
    try:
        sessions = {endpoint: copy_of(completed, tmp_path / endpoint) for endpoint in STALLS}
        started = time.monotonic()
        running = {e: start_upload(servers[e], tmp_path / e, sessions[e]) for e in STALLS}  # side by side
        results = {e: proc.communicate(timeout=300) for e, proc in running.items()}
        assert time.monotonic() - started < 120
        for endpoint in STALLS:
            server, (out, err) = servers[endpoint], results[endpoint]
            assert running[endpoint].returncode == 1, (endpoint, out, err)
            assert out == ""
            (line,) = err.splitlines()
            assert line.startswith(f"tracked: {sessions[endpoint]}: upload incomplete: "), line
            assert server.calls(endpoint), endpoint  # it was reached, and stalled
            (task,) = server.tasks.values()
            assert task["status"] == "failed", endpoint
            assert task["status_message"] == "tracked upload: incomplete"
            assert f"task {task['id']} is marked failed" in line
            assert record(sessions[endpoint])["state"] == "failed"
    finally:
        for server in servers.values():
            server.stop()


def test_two_uploads_of_one_session_at_once_make_one_task(completed: Path, tmp_path: Path) -> None:
    """A second `tracked upload` of a session being uploaded (its folder, while the first sends its zip)
    says so in one line, exit code 1, and sends nothing: one completed task."""
    session = copy_of(completed, tmp_path / "offline")
    with StandInServer(delay={"tasks.started": 10}) as server:
        first = start_upload(server, tmp_path, session.with_name(session.name + ".zip"))
        assert server.wait_for(lambda: server.calls("tasks.started"), timeout=120)  # the first is mid-upload
        second = upload(server, tmp_path, session)
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, out + err
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stdout == ""
        (line,) = second.stderr.splitlines()
        assert line == f"tracked: {session}: being uploaded by another process (`tracked upload` of this session " \
            "is still running); nothing was uploaded"  # fmt: skip
        assert len(server.calls("tasks.create")) == 1
        (task,) = server.tasks.values()
        assert task["status"] == "completed"
        # Once the first is done, the session is uploaded: no second task either.
        again = upload(server, tmp_path, session)
        assert again.returncode == 0, again.stderr
        assert f"already uploaded -> {task['id']}" in again.stdout
        assert len(server.tasks) == 1


def test_a_garbled_tasks_create_answer_leaves_no_orphan_and_a_retry_no_second_task(
    completed: Path, tmp_path: Path
) -> None:
    """The server creates the task but its answer is cut short: the task is found by the session's tag and
    marked failed; uploading again replaces it, leaving one completed task."""
    session = copy_of(completed, tmp_path / "offline")
    with StandInServer(garble={"tasks.create"}) as server:
        done = upload(server, tmp_path, session)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"tracked: {session}: upload ")
        assert server.tasks, "the stand-in made the task"
        for task in server.tasks.values():
            assert task["status"] == "failed"
            assert f"tracked-session:{completed.name}" in task["system_tags"]
        assert record(session)["task"] in server.tasks

        server.garble.clear()
        retry = upload(server, tmp_path, session)
        assert retry.returncode == 0, retry.stdout + retry.stderr
        (task,) = server.tasks.values()
        assert task["status"] == "completed"
        assert f"-> {task['id']} (completed)" in retry.stdout


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_an_interrupted_session_without_a_readable_journal_is_refused(died: Path, tmp_path: Path, damage: str) -> None:
    """A run that died mid-run, its tracked/0/run.json then lost or garbled: how it ended is not known; one
    line naming the journal, exit code 1, nothing on stdout, no task on the server."""
    session = copy_of(died, tmp_path / "offline")
    state = session / "tracked" / "0" / "run.json"
    json.loads(state.read_text())  # it was whole
    if damage == "missing":
        state.unlink()
    else:
        state.write_text('{"status": "running", "count": 5, "ser')
    with StandInServer() as server:
        done = upload(server, tmp_path, session)
        assert done.returncode == 1
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line == (
            f"tracked: {session}: upload refused: its run journal tracked/0/run.json is "
            f"{'missing' if damage == 'missing' else 'damaged (unreadable)'}, so how the run ended is not known; "
            "nothing was uploaded"
        )
        assert server.tasks == {}
        assert not server.calls("tasks.create")


def test_an_interrupted_session_with_its_journal_still_uploads_as_stopped(died: Path, tmp_path: Path) -> None:
    """The same session, its journal whole: interrupted, sent as stopped (the refusal is for a lost status only)."""
    session = copy_of(died, tmp_path / "offline")
    with StandInServer() as server:
        done = upload(server, tmp_path, session)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "(interrupted)" in done.stdout
        (task,) = server.tasks.values()
        assert task["status"] == "stopped"


def test_a_session_uploaded_elsewhere_is_not_sent_again_nor_its_task_deleted(completed: Path, tmp_path: Path) -> None:
    """A copy of an uploaded session without its upload record (another machine, a lost record): the task
    the first upload finished is found by the session's tag and kept; nothing is sent a second time."""
    first = copy_of(completed, tmp_path / "here")
    second = copy_of(completed, tmp_path / "elsewhere")
    with StandInServer() as server:
        done = upload(server, tmp_path, first)
        assert done.returncode == 0, done.stdout + done.stderr
        (task,) = server.tasks.values()
        again = upload(server, tmp_path, second)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"already uploaded -> {task['id']}" in again.stdout
        assert list(server.tasks) == [task["id"]]
        assert task["status"] == "completed"
