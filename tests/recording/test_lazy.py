"""lazy=True: the caller iterates; items, send/throw/close and the return value pass as with `yield from`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from tracked import read_session, tracked_eval


@tracked_eval(lazy=True)
def echo() -> Generator[float, float | None, dict[str, str]]:
    """Yields what it is sent, doubled; returns a marker."""
    value = yield 0.0
    while value is not None:
        try:
            value = yield value * 2
        except KeyError:
            value = yield -1.0
    return {"note": "done"}


def test_items_pass_through_unchanged_and_the_run_ends_with_the_generator() -> None:
    """next/send yield the generator's items; StopIteration carries its return value; the run is reported."""
    gen = echo()
    assert next(gen) == 0.0
    assert gen.send(1.5) == 3.0
    assert gen.send(2.0) == 4.0
    with pytest.raises(StopIteration) as stop:
        gen.send(None)
    assert stop.value.value == {"note": "done"}
    result = gen.result  # type: ignore[attr-defined]
    assert result["num_examples"] == 3
    assert result["note"] == "done"
    chart = read_session(result.session_dir).scalars["Training Progress"]["score"]
    assert chart == [(0, 0.0), (1, 3.0), (2, 4.0)]


def test_throw_is_forwarded_and_its_handling_yields() -> None:
    """throw() reaches the user's generator; what it yields in response is the next example."""
    gen = echo()
    next(gen)
    assert gen.send(1.0) == 2.0
    assert gen.throw(KeyError("x")) == -1.0
    with pytest.raises(ValueError, match="boom"):
        gen.throw(ValueError("boom"))
    result = gen.result  # type: ignore[attr-defined]
    assert result.status == "failed"
    assert result["num_examples"] == 3


def test_close_records_what_was_consumed() -> None:
    """close() ends the run as stopped with the examples consumed so far."""
    gen = echo()
    next(gen)
    gen.send(1.0)
    gen.close()
    result = gen.result  # type: ignore[attr-defined]
    assert result.status == "stopped"
    assert result["num_examples"] == 2
    assert read_session(result.session_dir).status == "stopped"


def test_lazy_async_generator_forwards_items_and_aclose() -> None:
    """An async generator with lazy=True is iterated by the caller; aclose() records the partial run."""

    @tracked_eval(lazy=True)
    async def numbers() -> AsyncIterator[float]:
        for i in range(10):
            yield float(i)

    async def consume() -> object:
        agen = numbers()
        got = [await agen.__anext__() for _ in range(3)]
        assert got == [0.0, 1.0, 2.0]
        await agen.aclose()
        return agen.result  # type: ignore[attr-defined]

    result = asyncio.run(consume())
    assert result["num_examples"] == 3  # type: ignore[index]
    assert result.status == "stopped"  # type: ignore[attr-defined]


def test_lazy_async_generator_runs_to_the_end() -> None:
    """async for over a lazy async generator sees every item, and the run completes."""

    @tracked_eval(lazy=True)
    async def numbers() -> AsyncIterator[float]:
        for i in range(4):
            yield float(i)

    async def consume() -> tuple[list[float], object]:
        agen = numbers()
        items = [x async for x in agen]
        return items, agen.result  # type: ignore[attr-defined]

    items, result = asyncio.run(consume())
    assert items == [0.0, 1.0, 2.0, 3.0]
    assert result["score"] == 1.5  # type: ignore[index]
    assert result.status == "completed"  # type: ignore[attr-defined]


def test_abandoned_lazy_generator_is_saved_when_collected(clearml_cache: Path) -> None:
    """break, then drop the generator: garbage collection closes it and the partial run is on disk."""
    import gc

    @tracked_eval(lazy=True, verbose=False)
    def count() -> Generator[float, None, None]:
        for i in range(100):
            yield float(i)

    gen = count()
    for item in gen:
        if item == 4.0:
            break
    del gen
    gc.collect()
    (folder,) = [p for p in (clearml_cache / "offline").iterdir() if p.is_dir()]
    session = read_session(folder)
    assert session.status == "stopped"
    assert session.single_values["num_examples"] == 5


def test_an_abandoned_lazy_async_generator_ends_its_run(clearml_cache: Path) -> None:
    """Never iterated, or left after a few items without aclose: dropping it ends the run (stopped, with what
    was consumed), and nothing of it stays behind: no live thread, no current ClearML task a pool forked
    later would inherit (its workers' runs then failed over to local saves)."""
    import gc
    import threading

    from clearml import Task

    @tracked_eval(lazy=True, verbose=False)
    async def count() -> AsyncIterator[float]:
        for i in range(100):
            yield float(i)

    async def take_three() -> None:
        gen = count()
        for _ in range(3):
            await gen.__anext__()

    never = count()
    del never
    asyncio.run(take_three())
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name == "tracked-live"]
    assert Task.current_task() is None
    sessions = [read_session(p) for p in (clearml_cache / "offline").iterdir() if p.is_dir()]
    assert sorted(s.status for s in sessions) == ["stopped", "stopped"]
    assert sorted(s.single_values["num_examples"] for s in sessions) == [0, 3]


def test_cancelled_asyncio_task_records_the_partial_run(clearml_cache: Path) -> None:
    """Cancelling the task that awaits an evaluation: CancelledError propagates, the run is saved as stopped."""

    @tracked_eval(verbose=False)
    async def slow() -> AsyncIterator[float]:
        for i in range(1000):
            yield float(i)
            await asyncio.sleep(0.01 if i >= 3 else 0)

    async def main() -> None:
        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (folder,) = [p for p in (clearml_cache / "offline").iterdir() if p.is_dir()]
    session = read_session(folder)
    assert session.status == "stopped"
    assert 1 <= session.single_values["num_examples"] < 1000


@tracked_eval(lazy=True, verbose=False)
def scores(n: int) -> Generator[float, None, None]:
    for i in range(n):
        yield float(i)


def test_a_lazy_generator_left_with_break_inside_with_is_recorded_at_once() -> None:
    """``with ... as gen``: a ``break`` ends the run on leaving the block; ``gen.result`` is set there."""
    with scores(10) as gen:
        for value in gen:
            if value == 3.0:
                break
    assert gen.result is not None
    assert gen.result.status == "stopped"
    assert gen.result["num_examples"] == 4
    with scores(3) as whole:
        assert list(whole) == [0.0, 1.0, 2.0]
    assert whole.result is not None
    assert whole.result.status == "completed"


def test_a_lazy_async_generator_as_an_async_context_manager() -> None:
    @tracked_eval(lazy=True, verbose=False)
    async def numbers() -> AsyncIterator[float]:
        for i in range(10):
            yield float(i)

    async def consume() -> object:
        async with numbers() as gen:
            async for value in gen:
                if value == 1.0:
                    break
        return gen.result

    result = asyncio.run(consume())
    assert result is not None
    assert result["num_examples"] == 2  # type: ignore[index]


def test_tracked_lazy_in_the_environment_never_changes_what_a_call_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRACKED_LAZY=1 is not read (one warning saying why): a generator evaluation still returns its
    EvalResult, an async one its awaitable of it, as the code (and its types) say; lazy=True in the code
    still returns the generator."""
    import inspect

    from tracked import EvalResult, TrackedWarning

    monkeypatch.setenv("TRACKED_LAZY", "1")

    @tracked_eval(verbose=False)
    def evaluate() -> Generator[float, None, None]:
        yield from (0.0, 1.0)

    @tracked_eval(verbose=False)
    async def evaluate_async() -> AsyncIterator[float]:
        for value in (0.0, 1.0):
            yield value

    with pytest.warns(TrackedWarning, match="TRACKED_LAZY='1' is not read: lazy=True changes what the call returns"):
        result = evaluate()
    assert isinstance(result, EvalResult)
    assert result["score"] == 0.5
    with pytest.warns(TrackedWarning, match="TRACKED_LAZY"):
        awaitable = evaluate_async()
    assert inspect.iscoroutine(awaitable)
    assert asyncio.run(awaitable)["score"] == 0.5
    generator = echo()  # lazy=True given: the argument, as always, and no variable to speak of
    assert not isinstance(generator, EvalResult)
    assert next(generator) == 0.0
    generator.close()
