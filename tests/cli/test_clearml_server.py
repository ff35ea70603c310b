"""The stand-in ClearML server: the real SDK, online, in a fresh process, reports everything to it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.clearml_server import SINGLE_VALUE_ITERATION, StandInServer

FRAMEWORKS = (
    "detect_repository",
    "matplotlib",
    "tensorflow",
    "tensorboard",
    "pytorch",
    "xgboost",
    "scikit",
    "fastai",
    "lightgbm",
    "hydra",
    "joblib",
    "megengine",
    "catboost",
    "gradio",
    "tfdefines",
)

INIT = f"""
from clearml import Task
Task._report_subprocess_enabled = False
init_kwargs = dict(
    reuse_last_task_id=False,
    auto_connect_arg_parser=False,
    auto_connect_frameworks={{k: False for k in {FRAMEWORKS!r}}},
    auto_resource_monitoring=False,
    auto_connect_streams=False,
)
"""

ONLINE_RUN = INIT + textwrap.dedent(
    """
    import pandas as pd
    task = Task.init(project_name="p", task_name="t", **init_kwargs)
    logger = task.get_logger()
    for i in range(5):
        logger.report_scalar("Training Progress", "acc", value=i / 10, iteration=i)
    logger.report_single_value("acc", 0.5)
    logger.report_table("Final Metrics", "summary", iteration=0,
                        table_plot=pd.DataFrame({"Metric": ["acc"], "Value": [0.5]}))
    logger.report_text("hello")
    task.upload_artifact("examples", pd.DataFrame({"acc": [0.25, 0.75]}), wait_on_upload=True)
    task.set_user_properties(tracked_status="completed")
    print("TASK_ID", task.id)
    task.close()
    """
)

OFFLINE_RUN = INIT + textwrap.dedent(
    """
    Task.set_offline(True)
    task = Task.init(project_name="p", task_name="offline run", **init_kwargs)
    for i in range(3):
        task.get_logger().report_scalar("Training Progress", "acc", value=i / 4, iteration=i)
    folder = task.get_offline_mode_folder()
    task.close()
    print("ZIP", str(folder) + ".zip")
    """
)

IMPORT = textwrap.dedent(
    """
    import sys
    from clearml import Task
    print("TASK_ID", Task.import_offline_session(sys.argv[1]))
    """
)


def child_env(home: Path, server: StandInServer | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(HOME=str(home), CLEARML_CACHE_DIR=str(home / "cache"))
    if server is not None:
        env.update(server.env())
    return env


def run_child(script: str, env: dict[str, str], *args: str) -> dict[str, str]:
    """Run ``script`` in a fresh interpreter; returns its ``KEY value`` stdout lines as a dict."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("TASK_ID ", "ZIP ")))


def test_real_sdk_reports_a_run_to_the_stand_in(tmp_path: Path) -> None:
    """Task.init, scalars, a single value, a table, text, an artifact, properties and close all reach the server."""
    with StandInServer() as server:
        out = run_child(ONLINE_RUN, child_env(tmp_path, server))
        task_id = out["TASK_ID"]

        assert list(server.tasks) == [task_id]
        task = server.tasks[task_id]
        assert task["name"] == "t"
        assert server.projects[task["project"]]["name"] == "p"

        scalars = server.events(task_id, "training_stats_scalar")
        progress = [e for e in scalars if e["metric"] == "Training Progress" and e["variant"] == "acc"]
        assert [e["iter"] for e in progress] == [0, 1, 2, 3, 4]
        assert [e["value"] for e in progress] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
        single = [e for e in scalars if e["iter"] == SINGLE_VALUE_ITERATION]
        assert [(e["metric"], e["variant"], e["value"]) for e in single] == [("Summary", "acc", 0.5)]

        (plot,) = server.events(task_id, "plot")
        assert plot["metric"] == "Final Metrics"
        table = json.loads(plot["plot_str"])["data"][0]
        assert table["type"] == "table"
        assert table["cells"]["values"][0] == ["acc"]
        assert any("hello" in e["msg"] for e in server.events(task_id, "log"))

        (upload,) = server.calls("files.upload")
        (artifact,) = task["execution"]["artifacts"]
        assert artifact["key"] == "examples"
        path = artifact["uri"].removeprefix(server.files_url)
        assert b"0.75" in gzip.decompress(server.files[path])  # pandas artifacts are uploaded as csv.gz
        assert upload.status == 200

        assert task["hyperparams"]["properties"]["tracked_status"]["value"] == "completed"
        assert task["status"] == "completed"
        assert task["status_history"] == ["created", "in_progress", "completed"]
        assert server.unknown_endpoints() == []


def test_offline_session_import_reaches_the_stand_in(tmp_path: Path) -> None:
    """An offline session uploaded with Task.import_offline_session becomes a completed task with its scalars."""
    offline = run_child(OFFLINE_RUN, child_env(tmp_path / "offline", None))
    zip_path = Path(offline["ZIP"])
    assert zip_path.is_file()
    with StandInServer() as server:
        task_id = run_child(IMPORT, child_env(tmp_path / "upload", server), str(zip_path))["TASK_ID"]

        task = server.tasks[task_id]
        assert task["name"] == "offline run"
        assert server.projects[task["project"]]["name"] == "p"
        scalars = server.events(task_id, "training_stats_scalar")
        assert [(e["metric"], e["variant"], e["iter"], e["value"]) for e in scalars] == [
            ("Training Progress", "acc", 0, 0.0),
            ("Training Progress", "acc", 1, 0.25),
            ("Training Progress", "acc", 2, 0.5),
        ]
        assert task["status"] == "completed"
        assert server.unknown_endpoints() == []


def test_failure_injection_and_clean_stop() -> None:
    """fail answers with the status, delay waits, hang never answers, and stopping releases a hung request."""

    def call(server: StandInServer, endpoint: str, timeout: float = 5.0) -> int:
        request = urllib.request.Request(f"{server.api_url}/{endpoint}", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(json.load(response)["meta"]["result_code"])
        except urllib.error.HTTPError as err:
            return err.code

    server = StandInServer(fail={"events.add_batch": 500}, delay={"debug.ping": 0.3}, hang={"tasks.ping"})
    with server:
        assert call(server, "events.add_batch") == 500
        started = time.monotonic()
        assert call(server, "v2.23/debug.ping") == 200
        assert time.monotonic() - started >= 0.3
        with pytest.raises(TimeoutError):
            call(server, "tasks.ping", timeout=0.3)
        assert call(server, "no.such_endpoint") == 200
        assert server.unknown_endpoints() == ["no.such_endpoint"]
        server.delay.clear()
        assert call(server, "debug.ping") == 200
    assert [(r.endpoint, r.status) for r in server.requests] == [
        ("events.add_batch", 500),
        ("debug.ping", 200),
        ("tasks.ping", None),
        ("no.such_endpoint", 200),
        ("debug.ping", 200),
    ]
    assert not [t for t in threading.enumerate() if t.name.startswith("stand-in")]
