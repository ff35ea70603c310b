"""tracked's warnings point at the user's code (the call, or the line that yielded), never into tracked."""

from __future__ import annotations

import inspect
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_until

from tracked import TrackedWarning, tracked_eval


def caught_here(caught: list[warnings.WarningMessage]) -> list[tuple[str, int, str]]:
    return [(w.filename, w.lineno, str(w.message)) for w in caught if issubclass(w.category, TrackedWarning)]


def line_of(marker: str) -> int:
    """The line of this file that holds ``marker`` (a comment on the line expected)."""
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()  # type: ignore[arg-type]
    (number,) = [n for n, line in enumerate(lines, 1) if line.rstrip().endswith(f"# {marker}")]
    return number


def test_a_skipped_value_points_at_the_call() -> None:
    """A value that cannot be a number (recorder): the warning's file and line are the evaluation's call."""

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield {"acc": 1.0}
        yield [1, 2]  # an item that is neither a number nor a mapping: skipped

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate()  # the call: skipped value
    ((filename, lineno, message),) = caught_here(caught)
    assert "skipped" in message
    assert (filename, lineno) == (__file__, line_of("the call: skipped value"))


def test_a_returned_value_that_is_no_mapping_points_at_the_call() -> None:
    """The end of the run (summary) warns at the call too; so does a bad option from the environment."""

    @tracked_eval(verbose=False)
    def evaluate() -> list[int]:
        return [1, 2]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate()  # the call: not a mapping
    ((filename, lineno, message),) = caught_here(caught)
    assert "not a mapping" in message
    assert (filename, lineno) == (__file__, line_of("the call: not a mapping"))


def test_an_option_problem_points_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TRACKED_* variable that cannot be read: the warning points at the call it applies to."""
    monkeypatch.setenv("TRACKED_FLUSH_INTERVAL", "soon")

    @tracked_eval(verbose=False)
    def evaluate() -> dict[str, float]:
        return {"acc": 1.0}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate()  # the call: bad option
    found = caught_here(caught)
    assert found, "no warning"
    assert all((f, n) == (__file__, line_of("the call: bad option")) for f, n, _ in found), found


def test_a_warning_from_the_live_thread_points_at_the_call(clearml_cache: Path) -> None:
    """The journal failing on the background thread: the warning still points at the evaluation's call."""

    @tracked_eval(verbose=False, flush_interval=0.02)
    def evaluate(caught: list[warnings.WarningMessage]) -> Iterator[float]:
        yield 1.0
        journal = wait_until(lambda: next(iter(clearml_cache.glob("offline/*/tracked/0/run.json")), None))
        while journal.parent.is_dir():  # (the live thread may be writing a file in it meanwhile)
            shutil.rmtree(journal.parent, ignore_errors=True)
        journal.parent.write_text("not a folder")  # every later write fails
        wait_until(lambda: caught_here(caught), what="the journal's warning")
        yield 1.0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(caught)  # the call: live thread
    found = caught_here(caught)
    assert any("journal" in message for _, _, message in found), found
    assert all((f, n) == (__file__, line_of("the call: live thread")) for f, n, _ in found), found
