"""Every form of evaluation, decorated and called, with the type mypy must give each call (``assert_type``).

``tests/recording/test_typing.py`` runs mypy (strict) on this file, then runs ``check()``: each call
returns at run time what its type says.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Generator, Iterator
from typing import Any

from typing_extensions import assert_type

from tracked import EvalResult, tracked_eval


@tracked_eval
def plain(n: int) -> dict[str, float]:
    return {"acc": float(n)}


@tracked_eval
def generator(n: int) -> Iterator[float]:
    yield from [1.0] * n


@tracked_eval
def full_generator(n: int) -> Generator[float, None, dict[str, float]]:
    yield from [1.0] * n
    return {"extra": 2.0}


@tracked_eval
async def coroutine(n: int) -> dict[str, float]:
    return {"acc": float(n)}


@tracked_eval
async def async_iterator(n: int) -> AsyncIterator[float]:
    for _ in range(n):
        yield 1.0


@tracked_eval(verbose=False)
async def async_generator(n: int) -> AsyncGenerator[float, None]:
    for _ in range(n):
        yield 1.0


@tracked_eval(verbose=False, task_name="options")
async def async_iterator_with_options(n: int) -> AsyncIterator[float]:
    for _ in range(n):
        yield 1.0


@tracked_eval(verbose=False)
def generator_with_options(n: int) -> Iterator[float]:
    yield from [1.0] * n


@tracked_eval(verbose=False, lazy=True)
def lazy(n: int) -> Iterator[float]:
    yield from [1.0] * n


@tracked_eval(verbose=False, lazy=True)
async def lazy_async(n: int) -> AsyncIterator[float]:
    for _ in range(n):
        yield 1.0


class Evaluator:
    @tracked_eval(verbose=False)
    async def method(self, n: int) -> AsyncIterator[float]:
        for _ in range(n):
            yield 1.0


async def awaited() -> None:
    assert_type(await async_iterator(2), EvalResult)
    assert_type(await async_generator(2), EvalResult)
    assert_type(await async_iterator_with_options(2), EvalResult)
    assert_type(await coroutine(2), EvalResult)
    assert_type(await Evaluator().method(2), EvalResult)
    assert isinstance(await async_iterator(2), EvalResult)
    assert isinstance(await async_generator(2), EvalResult)
    assert isinstance(await async_iterator_with_options(2), EvalResult)
    assert isinstance(await coroutine(2), EvalResult)
    assert isinstance(await Evaluator().method(2), EvalResult)
    items = [x async for x in lazy_async(2)]
    assert_type(items, list[float])
    assert items == [1.0, 1.0]


def check() -> None:
    """Each call's value at run time is what its type says."""
    assert_type(plain(1), EvalResult)
    assert_type(generator(1), EvalResult)
    assert_type(full_generator(1), EvalResult)
    assert_type(generator_with_options(1), EvalResult)
    for pending in (coroutine(1), async_iterator(1), async_generator(1)):
        typed = assert_type(pending, Coroutine[Any, Any, EvalResult])
        typed.close()  # typed, not run: closed, never left unawaited
    assert_type(lazy(1), Iterator[float])
    assert_type(lazy_async(1), AsyncIterator[float])
    for result in (plain(1), generator(1), full_generator(1), generator_with_options(1)):
        assert isinstance(result, EvalResult)
    for call in (coroutine(1), async_iterator(1), async_generator(1)):
        assert inspect.iscoroutine(call)
        assert isinstance(asyncio.run(call), EvalResult)
    assert list(lazy(2)) == [1.0, 1.0]
    asyncio.run(awaited())
