"""Where a finished run goes: ClearML, the console.

A sink gets ``start(run)`` when the call begins and ``finish(run, result)``
once when it ends. Sinks never raise: a failing sink warns and the
evaluation's result is returned all the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._result import EvalResult
    from .._run import Run


class Sink(Protocol):
    def start(self, run: Run) -> None: ...

    def finish(self, run: Run, result: EvalResult) -> None: ...
