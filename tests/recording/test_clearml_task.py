"""The ClearML task a run makes: its type, tags, destination and other ``Task.init`` arguments (offline and
against the stand-in server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clearml_server import StandInServer
from support.scripts import run_script

from tracked import TrackedWarning, read_session, tracked_eval
from tracked.common.errors import SettingsError
from tracked.common.options import resolve


def scores(dataset: list[float]) -> Iterator[dict[str, float]]:
    for value in dataset:
        yield {"acc": value}


def test_a_task_is_of_type_testing_with_the_tags_given() -> None:
    """By default the task is a ClearML "testing" task; tags= and task_type= reach task.json."""
    plain = read_session(tracked_eval(verbose=False)(scores)([1.0, 0.0]).session_dir)
    assert plain.task["type"] == "testing"
    assert "tags" not in plain.task or plain.task["tags"] == []
    tagged = tracked_eval(verbose=False, tags=["nightly", "qa"], task_type="inference", task_name="tagged")
    session = read_session(tagged(scores)([1.0]).session_dir)
    assert (session.task["type"], sorted(session.task["tags"])) == ("inference", ["nightly", "qa"])  # a set in ClearML


def test_task_options_come_from_the_environment_too() -> None:
    """TRACKED_TAGS is comma-separated, TRACKED_TASK_INIT a JSON object, TRACKED_OUTPUT_URI a URI or a boolean."""
    environ = {
        "TRACKED_TAGS": "a, b",
        "TRACKED_TASK_TYPE": "qc",
        "TRACKED_TASK_INIT": '{"continue_last_task": false}',
        "TRACKED_OUTPUT_URI": "true",
    }
    settings, problems = resolve({}, environ)
    assert problems == []
    assert (settings.tags, settings.task_type, settings.task_init, settings.output_uri) == (
        ("a", "b"),
        "qc",
        {"continue_last_task": False},
        True,
    )
    assert resolve({}, {"TRACKED_OUTPUT_URI": "s3://bucket/evals"})[0].output_uri == "s3://bucket/evals"
    settings, problems = resolve({}, {"TRACKED_TASK_INIT": "[1]", "TRACKED_TASK_TYPE": "exam"})
    assert (settings.task_init, settings.task_type) == (None, "testing")
    assert [p.split("=")[0] for p in problems] == ["TRACKED_TASK_TYPE", "TRACKED_TASK_INIT"]


def test_task_init_refuses_what_tracked_sets_itself_in_one_error() -> None:
    """Keys tracked sets (its options, the hooks it keeps off) are refused when the decorator is applied."""
    with pytest.raises(SettingsError) as caught:
        tracked_eval(task_init={"tags": ["x"], "auto_connect_streams": True, "project_name": "p"})
    message = str(caught.value)
    assert "auto_connect_streams" in message
    assert "project_name (option project=)" in message
    assert "tags (option tags=)" in message
    with pytest.raises(SettingsError, match="task_type"):
        tracked_eval(task_type="exam")


def test_task_init_is_passed_through_to_task_init() -> None:
    """An argument Task.init does not take reaches it: one warning, the evaluation's result returned all the same."""
    with pytest.warns(TrackedWarning, match="no_such_argument"):
        result = tracked_eval(verbose=False, task_init={"no_such_argument": 1})(scores)([1.0, 0.0])
    assert result["acc"] == 0.5


ONLINE = """
    import json, warnings
    from tracked import tracked_eval

    @tracked_eval(verbose=False, tags=["nightly"], output_uri={destination!r})
    def evaluate(dataset):
        for value in dataset:
            yield {{"acc": value}}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate([1.0, 0.0, 1.0, 1.0])
    print("RESULT", json.dumps({{"task_id": result.task_id, "warnings": [str(w.message) for w in caught]}}))
"""


def test_online_the_task_has_its_type_tags_and_destination(tmp_path: Path) -> None:
    """Against the stand-in server: type testing, the tags, and the examples uploaded to output_uri."""
    destination = tmp_path / "artifacts"
    destination.mkdir()
    with StandInServer() as server:
        done = run_script(ONLINE.format(destination=str(destination)), tmp_path / "cache", env=server.env())
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout.split("RESULT ", 1)[1])
        assert [w for w in result["warnings"] if "tracked" in w.lower()] == []
        task = server.tasks[result["task_id"]]
        assert (task["type"], task["tags"]) == ("testing", ["nightly"])
        (artifact,) = [a for a in task["execution"]["artifacts"] if a["key"] == "examples"]
        assert str(destination) in artifact["uri"]
        assert any(p.is_file() for p in destination.rglob("*"))
