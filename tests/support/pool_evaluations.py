"""Decorated evaluations importable by name, for process-pool tests (spawned workers import this)."""

from __future__ import annotations

from collections.abc import Iterator

from tracked import tracked_eval


@tracked_eval(verbose=False)
def scaled(factor: float) -> Iterator[float]:
    for i in range(4):
        yield factor * i


class Suite:
    @tracked_eval(verbose=False)
    def method(self, n: int) -> Iterator[float]:
        yield from (float(i) for i in range(n))
