"""`tracked upload` against the stand-in server: what a server shows, and that no upload loses data silently.

Sessions are written by real @tracked_eval runs in child processes; the upload is the real command
(``python -m tracked upload``) and the real ClearML SDK, talking to ``support.clearml_server.StandInServer``.
"""

from __future__ import annotations

import glob
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from support.clearml_server import SINGLE_VALUE_ITERATION, StandInServer
from support.uploads import child_env, copy_of, record, upload
from support.waiting import wait_until

from tracked import tracked_eval

RUN = textwrap.dedent(
    """
    import json, sys, time
    from tracked import tracked_eval

    mode = sys.argv[1]

    @tracked_eval(project="upload tests", task_name=f"run {mode}", verbose=False, flush_interval=60)
    def evaluate(dataset, threshold: int = 3, rate: float = 0.25, strict: bool = False, label: str = "base"):
        for i, value in enumerate(dataset):
            if i == 6:  # the clock moves on mid-run: the two halves' points are scored 50 ms apart at least
                start = time.time()
                while time.time() - start < 0.05:
                    pass
            if mode == "stopped" and i == 9:
                raise KeyboardInterrupt
            yield {"acc": value, "prediction": f"answer {i}"}
        if mode == "failed":
            raise ValueError("tokenizer missing")

    try:
        result = evaluate([(i % 4) / 4 for i in range(12)], threshold=7, strict=True)
    except (ValueError, KeyboardInterrupt):
        pass
    """
)
MODES = ("completed", "failed", "stopped")
SERVER_STATUS = {"completed": "completed", "failed": "failed", "stopped": "stopped"}


def evaluate_in_child(home: Path, mode: str, server: StandInServer | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN, mode], env=child_env(home, server), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """mode -> an offline session folder (with its zip beside it) that a run ending that way wrote."""
    home = tmp_path_factory.mktemp("sessions")
    for mode in MODES:
        evaluate_in_child(home, mode)
    found = {}
    for task_json in (home / "cache" / "offline").glob("*/task.json"):
        found[json.loads(task_json.read_text())["name"].removeprefix("run ")] = task_json.parent
    assert sorted(found) == sorted(MODES)
    return found


def expected_points(session: Path) -> int:
    """Training Progress events in the session (one per iteration and series)."""
    events = [e for line in (session / "metrics.jsonl").read_text().splitlines() for e in json.loads(line)]
    return len({(e["variant"], e["iter"]) for e in events if e.get("metric") == "Training Progress"})


def console_events(session: Path) -> int:
    """Console events in the session (ClearML's start lines, its repository detection's, the summary)."""
    return sum(len(json.loads(line)) for line in (session / "log.jsonl").read_text().splitlines())


def no_success_printed(done: subprocess.CompletedProcess[str]) -> None:
    assert done.stdout == ""
    assert "results page" not in done.stdout + done.stderr  # ClearML's own "ClearML results page: ..."


def test_each_run_status_reaches_the_server_and_a_second_upload_makes_no_second_task(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    """completed / failed (error as status reason) / stopped: one line each with a link, a summary; again: no task."""
    for session in sessions.values():
        copy_of(session, tmp_path / "offline")
    with StandInServer() as server:
        done = upload(server, tmp_path, tmp_path / "offline" / "*.zip")
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 3
        assert "results page" not in done.stdout + done.stderr
        assert "tracked upload: 3 sessions: 3 uploaded" in done.stderr
        by_name = {task["name"].removeprefix("run "): task for task in server.tasks.values()}
        assert sorted(by_name) == sorted(MODES)
        for mode, task in by_name.items():
            (line,) = [line for line in lines if task["id"] in line]
            assert line.endswith(f"-> {task['id']} ({mode}) {server.api_url}/projects/{task['project']}"
                                 f"/experiments/{task['id']}/output/log")  # fmt: skip
            assert task["status"] == SERVER_STATUS[mode]
            assert task["hyperparams"]["properties"]["tracked_status"]["value"] == mode
        # What the same runs reported online end with (test_online_and_upload_make_the_same_task).
        assert by_name["completed"]["status_history"] == ["created", "in_progress", "completed"]
        assert by_name["failed"]["status_history"] == ["created", "in_progress", "completed", "failed"]
        assert by_name["failed"]["status_reason"] == "ValueError: tokenizer missing"
        assert by_name["stopped"]["status_history"] == ["created", "in_progress", "completed", "stopped"]

        again = upload(server, tmp_path, tmp_path / "offline" / "*.zip")
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(server.tasks) == 3
        assert len(server.calls("tasks.create")) == 3
        for task in server.tasks.values():
            assert f"already uploaded -> {task['id']}" in again.stdout
        assert "3 sessions: 3 already uploaded" in again.stderr
        # The folder of an uploaded zip is the same run: not uploaded a second time either.
        folders = upload(server, tmp_path, *(p for p in (tmp_path / "offline").iterdir() if p.is_dir()))
        assert folders.returncode == 0, folders.stderr
        assert folders.stdout.count("already uploaded") == 3
        assert len(server.tasks) == 3
    # The records beside the zips are hidden: a glob over the sessions never takes them for one.
    assert sorted(Path(p).suffix for p in glob.glob(str(tmp_path / "offline" / "*"))) == ["", "", "", *[".zip"] * 3]


def test_refused_events_fail_the_upload_and_the_next_upload_replaces_the_task(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    """events.add_batch answered 500: exit 1, one line naming what is missing, the task failed; a retry replaces it."""
    session = copy_of(sessions["completed"], tmp_path / "offline")
    with StandInServer(fail={"events.add_batch": 500}) as server:
        done = upload(server, tmp_path, session)
        assert done.returncode == 1
        no_success_printed(done)
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"tracked: {session}: upload incomplete: ")
        assert f"Training Progress: 0 of {expected_points(session)} points" in line
        assert f"console: 0 of {console_events(session)} events" in line
        assert "<500/0: events.add_batch" in line  # what ClearML was told
        (first,) = server.tasks.values()
        assert first["status"] == "failed"
        assert first["status_message"] == "tracked upload: incomplete"
        assert first["status_reason"].startswith("tracked upload: ")
        assert f"task {first['id']} is marked failed" in line
        entry = record(session)
        assert (entry["state"], entry["task"]) == ("failed", first["id"])

        server.fail.clear()
        retry = upload(server, tmp_path, session)
        assert retry.returncode == 0, retry.stdout + retry.stderr
        (second,) = server.tasks.values()  # the failed task was deleted, not left beside the new one
        assert second["id"] != first["id"]
        assert f"-> {second['id']} (completed)" in retry.stdout
        assert second["status"] == "completed"
        progress = [e for e in server.events(second["id"]) if e.get("metric") == "Training Progress"]
        assert len(progress) == expected_points(session)
        assert server.events(first["id"]) == []
        assert record(session)["state"] == "uploaded"


def test_a_files_server_error_leaves_no_task_in_progress(sessions: dict[str, Path], tmp_path: Path) -> None:
    """The artifact upload answered 500: ClearML raises with the task started; tracked marks it failed."""
    session = copy_of(sessions["failed"], tmp_path / "offline")
    with StandInServer(fail={"files.upload": 500}) as server:
        done = upload(server, tmp_path, session)
        assert done.returncode == 1
        no_success_printed(done)
        (line,) = done.stderr.splitlines()
        assert "Failed uploading object" in line
        assert "examples.parquet" in line
        (task,) = server.tasks.values()
        assert task["status"] == "failed"
        assert task["status_message"] == "tracked upload: incomplete"

        server.fail.clear()
        assert upload(server, tmp_path, session).returncode == 0
        (task,) = server.tasks.values()
        (artifact,) = task["execution"]["artifacts"]
        assert artifact["key"] == "examples"
        assert artifact["uri"].removeprefix(server.files_url) in server.files


@pytest.mark.parametrize(
    ("endpoint", "mode", "said"),
    [
        ("tasks.create", "completed", "no task was created"),
        ("tasks.edit", "completed", "tasks.edit"),
        ("tasks.completed", "completed", "status in_progress, not completed"),
        ("tasks.failed", "failed", "tasks.failed with HTTP 500"),
        ("tasks.stopped", "stopped", "tasks.stopped with HTTP 500"),
    ],
)
def test_a_task_endpoint_error_is_one_line_and_exit_1(
    sessions: dict[str, Path], tmp_path: Path, endpoint: str, mode: str, said: str
) -> None:
    session = copy_of(sessions[mode], tmp_path / "offline")
    with StandInServer(fail={endpoint: 500}) as server:
        done = upload(server, tmp_path, session)
        assert done.returncode == 1
        no_success_printed(done)
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"tracked: {session}: upload ")
        assert said in line, line
        for task in server.tasks.values():  # nothing left that looks finished or still going
            if endpoint != "tasks.failed":
                assert task["status"] == "failed"
        assert record(session)["state"] == "failed"


def test_a_batch_with_a_bad_session_uploads_the_others(sessions: dict[str, Path], tmp_path: Path) -> None:
    """A zip whose artifact file is gone (ClearML's import skips it, silently): that one fails, the others go."""
    folder = tmp_path / "offline"
    for session in sessions.values():
        copy_of(session, folder)
    broken = folder / (sessions["stopped"].name + ".zip")
    with zipfile.ZipFile(broken) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist() if "/artifacts/" not in info.filename]
    with zipfile.ZipFile(broken, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    with StandInServer() as server:
        done = upload(server, tmp_path, folder / "*.zip")
        assert done.returncode == 1
        assert done.stdout.count(" -> ") == 2
        assert str(broken) not in done.stdout
        failures = [line for line in done.stderr.splitlines() if line.startswith("tracked: /")]
        assert len(failures) == 1
        assert failures[0].startswith(
            f"tracked: {broken}: upload incomplete: artifact 'examples' not on the files server"
        )
        assert "tracked upload: 3 sessions: 2 uploaded, 1 failed" in done.stderr
        assert len(server.tasks) == 3

        again = upload(server, tmp_path, folder / "*.zip")
        assert again.returncode == 1
        assert "3 sessions: 2 already uploaded, 1 failed" in again.stderr
        assert len(server.tasks) == 3  # the failed one replaced, the others left as they were


def ms_now() -> int:
    """The time as a ClearML event's ``timestamp`` (whole milliseconds, truncated): comparable with them."""
    return int(time.time() * 1000)


def test_progress_points_carry_the_time_their_example_was_scored(clearml_cache: Path) -> None:
    """Each point is stamped with when its example (a range's last one) was scored, not when it was written."""
    points_file: list[Path] = []

    def written(iteration: int) -> bool:
        points_file[:] = points_file or [Path(p) for p in glob.glob(str(clearml_cache / "offline/*/metrics.jsonl"))]
        return bool(points_file) and f'"variant": "acc", "iter": {iteration},' in points_file[0].read_text()

    gate: list[int] = []

    @tracked_eval(verbose=False, flush_interval=0.02, max_points=8, task_name="clock")
    def evaluate(dataset: range) -> Iterator[dict[str, float]]:
        for i in dataset:
            if i == 55:  # mid-range (50..61): the points up to 49 are written before the rest is scored
                wait_until(lambda: written(49), what="the point at 49")
                gate.append(ms_now())
            if i == 62:  # the range ending at 61 is seen whole before the next one starts
                wait_until(lambda: written(61), what="the point at 61")
            yield {"acc": i / 100}

    start = ms_now()
    session = evaluate(range(100)).session_dir
    end = ms_now()
    assert session is not None
    events = [e for line in (session / "metrics.jsonl").read_text().splitlines() for e in json.loads(line)]
    events = [e for e in events if e.get("metric") == "Training Progress"]
    stamps = {e["iter"]: e["timestamp"] for e in events if e.get("variant") == "acc"}
    means = {e["iter"]: e["timestamp"] for e in events if e.get("variant") == "acc (running mean)"}
    assert sorted(stamps) == [11, 24, 36, 49, 61, 74, 86, 99]  # ranges of 12-13 examples, each at its last
    assert means == stamps
    ordered = [stamps[i] for i in sorted(stamps)]
    assert ordered == sorted(ordered)
    assert start <= ordered[0]
    assert ordered[-1] <= end
    # 61 closes the range 50..61: scored after the gate (its first examples were scored before it).
    assert stamps[49] <= gate[0] <= stamps[61]


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandInServer, list[tuple[str, str]]]]:
    """Each run reported online, and the same run written offline and uploaded: (server, [(online, uploaded)])."""
    home = tmp_path_factory.mktemp("twins")
    with StandInServer() as server:
        for mode in MODES:
            evaluate_in_child(home / f"online-{mode}", mode, server)
        online = {task["name"]: tid for tid, task in server.tasks.items()}
        for mode in MODES:
            evaluate_in_child(home / "offline", mode)
        done = upload(server, home / "upload", home / "offline" / "cache" / "offline" / "*.zip")
        assert done.returncode == 0, done.stdout + done.stderr
        uploaded = {task["name"]: tid for tid, task in server.tasks.items() if tid not in online.values()}
        assert sorted(uploaded) == sorted(online)
        yield server, [(online[name], uploaded[name]) for name in sorted(online)]


def test_online_and_upload_make_the_same_task(twins: tuple[StandInServer, list[tuple[str, str]]]) -> None:
    """The same evaluation reported online and uploaded from an offline session: the same task, event for
    event (times and the measured duration aside)."""
    server, pairs = twins
    for one, other in pairs:
        task, twin = server.tasks[one], server.tasks[other]
        for key in ("status", "status_reason", "status_message", "status_history", "hyperparams"):
            assert task[key] == twin[key], key
        assert server.projects[task["project"]]["name"] == server.projects[twin["project"]]["name"]
        assert artifact_frames(server, task).equals(artifact_frames(server, twin))
        assert comparable(server.events(one)) == comparable(server.events(other))
        # The console: tracked's summary alike; ClearML's own lines before it differ (its task id, "offline").
        consoles = ["\n".join(e["msg"] for e in server.events(t, "log")) for t in (one, other)]
        summary = consoles[0][consoles[0].index("tracked: ") :]
        assert masked(summary) in masked(consoles[1])
        for events in (server.events(one), server.events(other)):
            progress = sorted(
                (e["iter"], e["timestamp"])
                for e in events
                if e.get("metric") == "Training Progress" and e["variant"] == "acc"
            )
            stamps = [stamp for _, stamp in progress]
            assert stamps == sorted(stamps)
            # Each point keeps its example's time though all were reported at one flush, at the end: the
            # run waited 50 ms at example 6 (ClearML's own report_scalar would stamp them all alike).
            assert stamps[-1] - stamps[0] >= 25


def test_hyperparameters_keep_their_types_online_and_uploaded(
    twins: tuple[StandInServer, list[tuple[str, str]]],
) -> None:
    """int, float, bool and str arguments typed on the server as ``Task.connect`` records them."""
    server, pairs = twins
    for task_id in (task_id for pair in pairs for task_id in pair):
        args = server.tasks[task_id]["hyperparams"]["Args"]
        assert {name: (p["value"], p["type"]) for name, p in args.items()} == {
            "threshold": ("7", "int"),
            "rate": ("0.25", "float"),
            "strict": ("True", "bool"),
            "label": ("base", "str"),
        }


def artifact_frames(server: StandInServer, task: dict[str, Any]) -> Any:
    (artifact,) = task["execution"]["artifacts"]
    # Online, ClearML quotes the artifact's URL ("upload%20tests"), the import does not: the same file.
    path = unquote(artifact["uri"].removeprefix(server.files_url))
    import pandas as pd

    return pd.read_parquet(io.BytesIO(server.files[path]))


def masked(text: str) -> str:
    """Text with the measured durations (and any other decimals) blanked."""
    return re.sub(r"\d+\.\d+", "#", text)


def comparable(events: list[dict[str, Any]]) -> dict[tuple[Any, ...], Any]:
    """Scalars and plots by (type, metric, variant, iteration), without times and the run's measured duration."""
    out: dict[tuple[Any, ...], Any] = {}
    for e in events:
        if e["type"] == "log":
            continue
        key = (e["type"], e["metric"], e["variant"], e["iter"])
        assert key not in out
        if e["type"] == "plot":
            out[key] = masked(e["plot_str"])
        elif not (e["variant"] == "duration_seconds" and e["iter"] == SINGLE_VALUE_ITERATION):
            out[key] = e["value"]
    return out


def test_the_stand_in_refuses_what_clearml_server_refuses() -> None:
    """Status moves outside clearml-server's state machine need force; edits need a draft; same-id events replace."""

    def call(server: StandInServer, endpoint: str, **body: Any) -> int:
        request = urllib.request.Request(f"{server.api_url}/{endpoint}", data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(json.load(response)["meta"]["result_code"])
        except urllib.error.HTTPError as err:
            return err.code

    with StandInServer() as server:
        with urllib.request.urlopen(
            urllib.request.Request(f"{server.api_url}/tasks.create", data=b'{"name": "t"}', method="POST"), timeout=10
        ) as response:
            task_id = json.load(response)["data"]["id"]
        assert call(server, "tasks.completed", task=task_id) == 400  # created -> completed
        assert call(server, "tasks.started", task=task_id) == 200
        assert call(server, "tasks.edit", task=task_id, name="x") == 400  # not a draft any more
        assert call(server, "tasks.edit", task=task_id, name="x", force=True) == 200
        assert call(server, "tasks.completed", task=task_id) == 200
        assert call(server, "tasks.failed", task=task_id) == 400  # completed -> failed
        assert call(server, "tasks.failed", task=task_id, force=True) == 200
        assert (
            call(server, "tasks.edit_hyper_params", task=task_id, hyperparams=[{"section": "Args", "name": "a"}]) == 400
        )
        properties = [{"section": "properties", "name": "p", "value": "v"}]
        assert call(server, "tasks.edit_hyper_params", task=task_id, hyperparams=properties) == 200
        point = {"type": "training_stats_scalar", "task": task_id, "metric": "m", "variant": "v", "iter": 1}
        for value in (1.0, 2.0):  # json-lines, as the SDK sends them
            request = urllib.request.Request(
                f"{server.api_url}/events.add_batch", data=json.dumps({**point, "value": value}).encode(), method="POST"
            )
            request.add_header("Content-Type", "application/json-lines")
            urllib.request.urlopen(request, timeout=10).close()
        assert [e["value"] for e in server.events(task_id)] == [2.0]
        assert call(server, "tasks.delete", task=task_id) == 400  # not a draft: needs force
        assert call(server, "tasks.delete", task=task_id, force=True) == 200
        assert task_id not in server.tasks
        assert server.events(task_id) == []


def test_a_server_that_does_not_answer_is_one_line_and_nothing_sent(sessions: dict[str, Path], tmp_path: Path) -> None:
    session = copy_of(sessions["completed"], tmp_path / "offline")
    server = StandInServer().start()
    env = child_env(tmp_path, server)
    config = Path(env["CLEARML_CONFIG_FILE"])
    env["CLEARML_CONFIG_FILE"] = str(shutil.copy(config, tmp_path / config.name))  # outlives the server's files
    server.stop()  # its port is closed now
    done = subprocess.run(
        [sys.executable, "-m", "tracked", "upload", str(session)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("tracked: the configured ClearML server did not answer at http")
    assert line.endswith("nothing was uploaded")
    assert not (session / "tracked-upload.json").exists()
