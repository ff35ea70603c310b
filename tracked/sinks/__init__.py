"""Where a run goes: ClearML, the journal on disk, the terminal, a local fallback, the console.

A sink is told three things: ``start(run)`` when the call begins,
``progress(run, update)`` every ``flush_interval`` seconds while it runs
(from the live thread) and once more when it ends (``update.final``), and
``finish(run, result)`` once with the final result. Sinks never raise: a
failing sink warns (or records the problem on the result) and the
evaluation goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._live import Update
    from .._result import EvalResult
    from .._run import Run


class Sink(Protocol):
    def start(self, run: Run) -> None: ...

    def progress(self, run: Run, update: Update) -> None: ...

    def finish(self, run: Run, result: EvalResult) -> None: ...
