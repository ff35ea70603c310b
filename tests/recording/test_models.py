"""The ClearML model and dataset a run evaluated: the model linked as the task's input model with the final
metrics reported on it (against the stand-in server), the ids recorded as parameters (offline too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.clearml_server import SINGLE_VALUE_ITERATION, StandInServer
from support.scripts import run_script

from tracked import read_session, tracked_eval

SCRIPT = """
    from clearml import InputModel
    from tracked import tracked_eval

    @tracked_eval(verbose=False, {options})
    def evaluate(model, dataset, split="test"):
        for value in dataset:
            yield {{"acc": value}}

    print("TASK_ID", evaluate({model}, [1.0, 0.0, 1.0, 1.0]).task_id)
"""


def run_online(tmp_path: Path, server: StandInServer, options: str, model: str) -> dict[str, Any]:
    done = run_script(SCRIPT.format(options=options, model=model), tmp_path / "cache", env=server.env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TrackedWarning" not in done.stderr, done.stderr
    (task_id,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("TASK_ID ")]
    return server.tasks[task_id]


@pytest.mark.parametrize("how", ["argument", "option"])
def test_a_clearml_model_is_the_input_model_and_gets_the_final_metrics(tmp_path: Path, how: str) -> None:
    """An InputModel argument (or model_id=): the task's input model; the model holds the final metrics as single
    values; model and dataset ids are parameters."""
    with StandInServer() as server:
        model_id = server.add_model("resnet")
        if how == "argument":
            task = run_online(tmp_path, server, 'dataset_id="ds-7"', f"InputModel(model_id={model_id!r})")
        else:
            task = run_online(tmp_path, server, f'model_id={model_id!r}, dataset_id="ds-7"', "object()")
        assert [m["model"] for m in task["models"]["input"]] == [model_id]
        args = {name: p["value"] for name, p in task["hyperparams"]["Args"].items()}
        assert args == {"model_id": model_id, "dataset_id": "ds-7", "split": "test"}
        on_model = {e["variant"]: e["value"] for e in server.model_events if e["task"] == model_id}
        assert {e["iter"] for e in server.model_events} == {SINGLE_VALUE_ITERATION}
        assert on_model["acc"] == pytest.approx(0.75)
        assert on_model["num_examples"] == 4
        assert server.unknown_endpoints() == []


def test_offline_the_ids_are_parameters() -> None:
    """No server to link a model on: model_id and dataset_id are recorded, the run completes without a warning."""

    @tracked_eval(verbose=False, model_id="m-1", dataset_id="ds-1")
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    session = read_session(evaluate([1.0, 0.0]).session_dir)
    assert session.hyperparameters["Args"] == {"model_id": "m-1", "dataset_id": "ds-1"}
    assert session.status == "completed"
