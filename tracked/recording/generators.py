"""Lazy tracked generators: the caller iterates, tracked watches.

These forward ``send``/``throw``/``close`` (and their async forms) to the
user's generator exactly as ``yield from`` would, record each item on the
way out, and end the run when the generator returns, raises or is closed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from .run import COMPLETED, STOPPED, status_of

if TYPE_CHECKING:
    from ..common.result import EvalResult
    from .run import Run


class TrackedGenerator(Generator[Any, Any, Any]):
    """A user's generator, observed. ``result`` holds the EvalResult once it ended."""

    def __init__(self, run: Run, inner: Generator[Any, Any, Any]) -> None:
        self._run = run
        self._inner = inner

    @property
    def result(self) -> EvalResult | None:
        return self._run.result

    def _step(self, method: str, *args: Any) -> Any:
        try:
            item = getattr(self._inner, method)(*args)
            self._run.add(item)  # (a signal halfway through the example ends the run as the evaluation's would)
        except StopIteration as stop:
            self._run.finish(COMPLETED, stop.value)
            raise
        except BaseException as exc:
            if self._run.result is None:
                self._run.finish(status_of(exc), error=exc)
            raise
        return item

    def __next__(self) -> Any:
        return self._step("send", None)

    def send(self, value: Any) -> Any:
        return self._step("send", value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        return self._step("throw", typ, val, tb) if val is not None or tb is not None else self._step("throw", typ)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if self._run.result is None:
                self._run.finish(STOPPED)

    def __enter__(self) -> TrackedGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        """``with evaluate(..., lazy=True) as gen:``: left early (``break``, an exception), the run is
        recorded at once with what was consumed (``stopped``); ``gen.result`` is then set."""
        self.close()

    def __del__(self) -> None:
        # An abandoned generator still records what was consumed.
        if getattr(self, "_run", None) is not None and self._run.result is None:
            self.close()


class TrackedAsyncGenerator(AsyncGenerator[Any, Any]):
    """A user's async generator, observed. ``result`` holds the EvalResult once it ended."""

    def __init__(self, run: Run, inner: AsyncGenerator[Any, Any]) -> None:
        self._run = run
        self._inner = inner

    @property
    def result(self) -> EvalResult | None:
        return self._run.result

    async def _step(self, method: str, *args: Any) -> Any:
        try:
            item = await getattr(self._inner, method)(*args)
            self._run.add(item)  # (a signal halfway through the example ends the run as the evaluation's would)
        except StopAsyncIteration:
            self._run.finish(COMPLETED)
            raise
        except BaseException as exc:
            if self._run.result is None:
                self._run.finish(status_of(exc), error=exc)
            raise
        return item

    def __anext__(self) -> Any:
        return self._step("asend", None)

    def asend(self, value: Any) -> Any:
        return self._step("asend", value)

    def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        return self._step("athrow", typ, val, tb) if val is not None or tb is not None else self._step("athrow", typ)

    async def __aenter__(self) -> TrackedAsyncGenerator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._run.result is None:
                self._run.finish(STOPPED)

    def __del__(self) -> None:
        # An abandoned async generator (never iterated, or left unfinished without ``aclose``) still ends its
        # run with what was consumed: its task, live thread and signal handlers must not outlive it (a pool
        # forked later would inherit an open task). The inner generator is finalized by its event loop.
        if getattr(self, "_run", None) is not None and self._run.result is None:
            self._run.finish(STOPPED)
