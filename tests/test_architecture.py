"""The house's rules that a reader relies on: options defined once, sinks handed plain data."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest

import tracked
from tracked.common.options import FIELDS, Options, Settings, check_options, resolve, rules
from tracked.common.result import EvalResult
from tracked.recording.sink import RunView, Update, Where


def test_the_decorators_options_are_the_fields_of_settings() -> None:
    """Options (the decorator's typed keywords) names every field of Settings but lazy, and accepts its type."""
    typed = typing.get_type_hints(Options)
    assert set(typed) | {"lazy"} == set(FIELDS)
    settings = typing.get_type_hints(Settings)
    for name, accepted in typed.items():
        default = Settings._field_defaults[name]
        if default is not None:  # the default's own type is among what the keyword accepts
            assert isinstance(default, tuple) or type(default) in typing.get_args(accepted), (name, accepted)
        assert settings[name] is not None


def test_every_option_is_checked_and_read_from_the_environment_by_its_rule() -> None:
    """One rule per field, from Settings' annotations: bad values are refused, variables parsed by type."""
    assert set(rules()) == set(FIELDS)
    with pytest.raises(ValueError, match="flush_interval"):
        check_options({"flush_interval": 0})
    with pytest.raises(ValueError, match="max_points"):
        check_options({"max_points": True})
    environ = {"TRACKED_MAX_POINTS": "7", "TRACKED_OFFLINE": "auto", "TRACKED_METRICS": "a, b", "TRACKED_ENABLED": "no"}
    settings, problems = resolve({}, environ)
    assert (settings.max_points, settings.offline, settings.metrics, settings.enabled) == (7, None, ("a", "b"), False)
    assert problems == []
    settings, problems = resolve({}, {"TRACKED_CONSOLE_EXAMPLES": "-1", "TRACKED_SERVER_TIMEOUT": "nan"})
    assert settings.console_examples == 3
    assert settings.server_timeout == 5.0
    assert [p.split("=")[0] for p in problems] == ["TRACKED_CONSOLE_EXAMPLES", "TRACKED_SERVER_TIMEOUT"]


class _Recording:
    """A sink that keeps what it is handed, and reports a place of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: Where | None = None
        self.updates: list[Update] = []
        self.finished: tuple[Where, EvalResult] | None = None
        self.closed: Where | None = None
        self.joined_at: list[Where] = []

    def start(self, run: RunView, where: Where) -> Where | None:
        self.started = where
        return None

    def joined(self, run: RunView, where: Where) -> Where | None:
        self.joined_at.append(where)
        return None

    def progress(self, run: RunView, update: Update) -> None:
        self.updates.append(update)

    def finish(self, run: RunView, result: EvalResult, where: Where) -> Where | None:
        self.finished = (where, result)
        return Where(saved_to=self.folder)

    def close(self, run: RunView, result: EvalResult, where: Where) -> Where | None:
        self.closed = where
        return None


@pytest.mark.parametrize("background", [False, True], ids=["task-made-at-start", "task-made-in-background"])
def test_a_sink_is_handed_what_the_sinks_before_it_reported_and_returns_its_own(
    tmp_path: Path, background: bool
) -> None:
    """The ClearML sink's task and offline session, the journal's folder, reach a later sink as plain data
    (at ``start``; or, when ClearML makes its task in the background, at ``joined``, once it is there);
    what that sink returns reaches the result. Nothing is written into the run or the result by a sink."""
    from tracked.common.call import CallInfo
    from tracked.recording.run import COMPLETED, Run
    from tracked.sinks.clearml.sink import ClearMLSink
    from tracked.sinks.defaults import follow
    from tracked.sinks.journal import JournalSink

    settings, _ = resolve({"verbose": False, "task_name": "sink protocol"})
    mine = _Recording(tmp_path / "mine")
    sinks: list[Any] = [ClearMLSink(background), JournalSink(), mine]
    run = Run(settings, "sink protocol", CallInfo(yields=True), sinks)
    run.follower = follow(run)
    for value in (0.25, 0.75):
        run.add(value)
    result = run.finish(COMPLETED)

    assert mine.started is not None
    if background:  # nothing of ClearML's at the start; told once, when the task is there
        assert (mine.started.task_id, mine.started.session_dir) == (None, None)
        (told,) = mine.joined_at
    else:
        (told,) = (mine.started,)
        assert not mine.joined_at
    assert told.session_dir is not None
    session = told.session_dir
    assert told.task_id == result.task_id
    assert session == result.session_dir
    assert told.journal_dir is not None
    assert told.journal_dir.parent.parent == session
    assert mine.updates
    assert mine.updates[-1].final
    assert mine.updates[-1].count == 2
    assert mine.finished is not None
    where, handed = mine.finished
    assert handed is result
    assert where.problems == ()
    assert where.task_id == result.task_id
    assert result.saved_to == tmp_path / "mine"
    assert result["score"] == 0.5
    assert mine.closed is not None
    assert mine.closed.saved_to == tmp_path / "mine"
    read = tracked.read_session(session)
    assert read.single_values["score"] == 0.5
    assert read.status == "completed"


def test_no_module_is_longer_than_400_lines() -> None:
    """One concern per module: none of the package's modules is over 400 lines."""
    root = Path(tracked.__file__).parent
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
