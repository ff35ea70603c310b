"""The user's exceptions and Ctrl-C reach the caller untouched; the partial run is reported, and never resumed as
another model's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tracked import read_session, tracked_eval


class EvalError(Exception):
    pass


def sessions(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "offline").iterdir() if p.is_dir())


def test_exception_reaches_the_caller_unchanged_and_the_partial_run_is_reported(clearml_cache: Path) -> None:
    """Same exception object; examples so far stay reported; partial final metrics; status failed."""
    error = EvalError("example 3 is broken")

    @tracked_eval
    def evaluate() -> Iterator[float]:
        yield 1.0
        yield 0.0
        yield 0.5
        raise error

    with pytest.raises(EvalError) as caught:
        evaluate()
    assert caught.value is error
    assert caught.value.__traceback__ is not None
    frames = []
    tb = caught.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "evaluate"  # the raising frame is still the user's
    (folder,) = sessions(clearml_cache)
    session = read_session(folder)
    assert session.status == "failed"
    assert session.scalars["Training Progress"]["score"] == [(0, 1.0), (1, 0.0), (2, 0.5)]
    assert session.single_values["num_examples"] == 3
    assert session.single_values["score"] == 0.5
    assert "duration_seconds" in session.single_values
    assert "EvalError: example 3 is broken" in session.console


def test_plain_and_async_exceptions_pass_through(clearml_cache: Path) -> None:
    """Plain functions and coroutines: the same object reaches the caller; each run is marked failed."""
    error = EvalError("bad")

    @tracked_eval
    def plain() -> dict[str, float]:
        raise error

    @tracked_eval
    async def coroutine() -> dict[str, float]:
        await asyncio.sleep(0)
        raise error

    @tracked_eval
    async def agen() -> AsyncIterator[float]:
        yield 1.0
        raise error

    with pytest.raises(EvalError) as first:
        plain()
    with pytest.raises(EvalError) as second:
        asyncio.run(coroutine())
    with pytest.raises(EvalError) as third:
        asyncio.run(agen())
    assert first.value is second.value is third.value is error
    statuses = [read_session(f).status for f in sessions(clearml_cache)]
    assert statuses == ["failed"] * 3


def test_generator_raising_on_its_first_step_reports_zero_examples(clearml_cache: Path) -> None:
    """An evaluation that fails before yielding still leaves a failed run with num_examples 0."""

    @tracked_eval
    def evaluate() -> Iterator[float]:
        raise EvalError("no data")
        yield 1.0

    with pytest.raises(EvalError):
        evaluate()
    (folder,) = sessions(clearml_cache)
    assert read_session(folder).single_values["num_examples"] == 0


def test_keyboard_interrupt_marks_the_run_stopped_and_propagates(clearml_cache: Path) -> None:
    """Ctrl-C: the partial run is saved as stopped and the KeyboardInterrupt carries on."""

    @tracked_eval
    def evaluate() -> Iterator[float]:
        yield 1.0
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate()
    (folder,) = sessions(clearml_cache)
    session = read_session(folder)
    assert session.status == "stopped"
    assert session.single_values["num_examples"] == 1


def test_resume_never_mixes_two_models() -> None:
    """A stopped run of one model is not resumed by a call with another model (a path or an object)."""

    @tracked_eval(verbose=False, resume=True)
    def evaluate(model: str, dataset: list[int]) -> Iterator[float]:
        for i in dataset:
            if model == "a.pt" and i == 5:
                raise KeyboardInterrupt
            yield 1.0 if model == "b.pt" else 0.0

    with pytest.raises(KeyboardInterrupt):
        evaluate("a.pt", list(range(10)))
    result = evaluate("b.pt", list(range(10)))
    assert result["score"] == 1.0
    assert result["num_examples"] == 10
