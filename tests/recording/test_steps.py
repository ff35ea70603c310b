"""An evaluation run at each epoch inside a training task: its own parameter section, a per-epoch curve per
metric, and every step's results kept apart (offline and against the stand-in server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.clearml_server import SINGLE_VALUE_ITERATION, StandInServer
from support.scripts import only_session, run_script

from tracked import read_session, tracked_eval

EPOCHS = 3
EXAMPLES = 40

TRAINING = """
    import argparse, json, sys
    import numpy as np
    from clearml import Task
    from tracked import tracked_eval

    OFFLINE = {offline!r}
    FRAMEWORKS = ("detect_repository", "matplotlib", "tensorflow", "tensorboard", "pytorch", "xgboost", "scikit",
                  "fastai", "lightgbm", "hydra", "joblib", "megengine", "catboost", "gradio", "tfdefines")
    Task._report_subprocess_enabled = False
    if OFFLINE:
        Task.set_offline(True)
    # The user's own training task: argparse connected (its Args), the rest quiet for the test's sake.
    task = Task.init(project_name="train", task_name="logistic", reuse_last_task_id=False,
                     auto_connect_frameworks=dict.fromkeys(FRAMEWORKS, False), auto_resource_monitoring=False,
                     auto_connect_streams=False)
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="all")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args({argv!r})

    rng = np.random.default_rng(0)
    x = rng.normal(size=({examples}, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)

    @tracked_eval(verbose=False)
    def validate(model, dataset, split="validation", threshold=0.5):
        features, labels = dataset
        for row, label in zip(features, labels):
            p = 1 / (1 + np.exp(-row @ model))
            yield {{"acc": float((p > threshold) == label), "loss": float(-np.log(p if label else 1 - p))}}

    w = np.zeros(2)
    found = []
    for epoch in range(args.epochs):
        for row, label in zip(x, y):  # one epoch of SGD
            p = 1 / (1 + np.exp(-row @ w))
            w -= 0.5 * (p - label) * row
        result = tracked_eval(step=epoch)(validate)(w, (x, y), split="validation")
        found.append({{"acc": result["acc"], "loss": result["loss"]}})
    print("RESULT", json.dumps({{"task_id": task.id, "folder": str(task.get_offline_mode_folder() or ""),
                                "results": found}}))
    task.close()
"""


def run_training(tmp_path: Path, offline: bool, env: dict[str, str] | None = None) -> dict[str, Any]:
    argv = ["--split", "train", "--epochs", str(EPOCHS)]
    done = run_script(TRAINING.format(offline=offline, examples=EXAMPLES, argv=argv), tmp_path / "cache", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    assert len(result["results"]) == EPOCHS
    return result


def test_an_evaluation_per_epoch_inside_a_training_task_offline(tmp_path: Path) -> None:
    """Host Args untouched; the evaluation's arguments in their own section; one curve per metric with a point
    per epoch; each epoch's progress chart, tables, single values and examples artifact apart."""
    result = run_training(tmp_path, offline=True)
    folder = Path(result["folder"])
    assert folder == only_session(tmp_path / "cache")
    session = read_session(folder)
    params = session.task["hyperparams"]
    assert params["Args"]["split"]["value"] == "train"  # the host's argparse value, never the evaluation's
    assert params["validate"]["split"]["value"] == "validation"
    assert params["validate"]["threshold"]["value"] == "0.5"
    assert params["validate"]["threshold"]["type"] == "float"

    per_epoch = session.scalars["validate"]
    for metric in ("acc", "loss"):
        points = per_epoch[metric]
        assert [i for i, _ in points] == list(range(EPOCHS))
        assert [v for _, v in points] == pytest.approx([r[metric] for r in result["results"]])
    assert set(per_epoch) == {"acc", "loss"}  # tracked's own measures are single values only
    for step in range(EPOCHS):
        progress = session.scalars[f"Training Progress (step {step})"]
        assert [i for i, _ in progress["acc"]] == list(range(EXAMPLES))
        assert session.single_values[f"acc (step {step})"] == pytest.approx(result["results"][step]["acc"])
    assert session.single_values["acc"] == pytest.approx(result["results"][-1]["acc"])  # the latest is "the" one

    lines = (folder / "metrics.jsonl").read_text().splitlines()
    plots = [e for line in lines for e in json.loads(line) if e.get("type") == "plot"]
    for title in ("Final Metrics", "Metric Statistics"):
        assert sorted(e["iter"] for e in plots if e["metric"] == title) == list(range(EPOCHS))
    artifacts = {a["key"] for a in session.task["execution"]["artifacts"]}
    assert artifacts == {f"examples (step {step})" for step in range(EPOCHS)}


def test_an_evaluation_per_epoch_inside_a_training_task_online(tmp_path: Path) -> None:
    """The same against the stand-in server, read back from what it holds."""
    with StandInServer() as server:
        result = run_training(tmp_path, offline=False, env=server.env())
        task = server.tasks[result["task_id"]]
        assert task["hyperparams"]["Args"]["split"]["value"] == "train"
        assert task["hyperparams"]["validate"]["split"]["value"] == "validation"
        scalars = server.events(result["task_id"], "training_stats_scalar")
        for metric in ("acc", "loss"):
            points = sorted(
                (e["iter"], e["value"]) for e in scalars if e["metric"] == "validate" and e["variant"] == metric
            )
            assert [i for i, _ in points] == list(range(EPOCHS))
            assert [v for _, v in points] == pytest.approx([r[metric] for r in result["results"]])
        for step in range(EPOCHS):
            progress = [
                e["iter"]
                for e in scalars
                if e["metric"] == f"Training Progress (step {step})" and e["variant"] == "acc"
            ]
            assert sorted(progress) == list(range(EXAMPLES))
        singles = {e["variant"]: e["value"] for e in scalars if e["iter"] == SINGLE_VALUE_ITERATION}
        assert singles["acc"] == pytest.approx(result["results"][-1]["acc"])
        assert singles[f"acc (step {EPOCHS - 1})"] == pytest.approx(result["results"][-1]["acc"])
        plots = server.events(result["task_id"], "plot")
        assert sorted(e["iter"] for e in plots if e["metric"] == "Final Metrics") == list(range(EPOCHS))
        keys = {a["key"] for a in task["execution"]["artifacts"]}
        assert keys == {f"examples (step {step})" for step in range(EPOCHS)}


def test_step_per_call_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """tracked_eval(step=...)(evaluate) adds the step to a decorated function's options; TRACKED_STEP sets it."""

    @tracked_eval(verbose=False, task_name="per call")
    def evaluate(dataset: list[float]) -> Any:
        yield from dataset

    session = read_session(tracked_eval(step=4)(evaluate)([1.0, 0.0]).session_dir)
    assert session.scalars["per call"]["score"] == [(4, 0.5)]
    monkeypatch.setenv("TRACKED_STEP", "7")
    session = read_session(evaluate([1.0, 1.0]).session_dir)
    assert session.scalars["per call"]["score"] == [(7, 1.0)]
    assert "Training Progress (step 7)" in session.scalars
