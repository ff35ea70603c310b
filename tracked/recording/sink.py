"""What a sink is, and what it is handed: the protocol between a run and the places it goes.

A sink is told four things: ``start(run, where)`` when the call begins,
``progress(run, update)`` every ``flush_interval`` seconds while it runs
(from the live thread) and once more when it ends (``update.final``),
``finish(run, result, where)`` once with the final result (report what it
holds of the run), and ``close(run, result, where)`` once every sink has
finished (let go of what it holds, say where it all went). Two steps,
because what one sink vouches for must be on disk before another seals it:
the journal says how the run ended only after ClearML reported the final
metrics, and ClearML zips the session only after the journal said it;
the local copy and the console summary then know every problem. It sees the run
through ``RunView`` (read-only) and is handed ``Where``: what the sinks
before it reported (the ClearML task, the session folder, problems). It
returns what it did itself, as a ``Where`` (or None); the run adds that to
what the next sink is handed, and the result carries the sum. Sinks never
write into the run, the result or each other, and never raise: a failing
sink warns, or returns the problem, and the evaluation goes on.

A sink may start in the background (ClearML making its task while the
evaluation scores its first examples): it has ``ready(run, ending)``, which
the run asks before each flush and once at the end (``ending``: wait for
it, or give up) and which returns what the sink made, once, when it is
there. The sinks after it are then told with ``joined(run, where)`` (the
journal moves into ClearML's offline session, the console says where the
run goes), and may return what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..common.call import CallInfo
    from ..common.options import Settings
    from ..common.result import EvalResult
    from ..store.resume import Earlier
    from .chart import FloatArray, Points
    from .details import Block, Details, Row
    from .storage import Series


@dataclass(frozen=True)
class Where:
    """Where a run went, as its sinks reported it; each field is set by the sink that knows it."""

    #: The ClearML task (or offline task) the run reports into.
    task_id: str | None = None
    #: The offline session folder, when the run reports offline.
    session_dir: Path | None = None
    #: The run's journal folder (its examples, made durable while it goes).
    journal_dir: Path | None = None
    #: The local folder the run was saved in because ClearML failed.
    saved_to: Path | None = None
    #: The prefix of the run's names in a task it shares with overlapping runs ("" for the first).
    prefix: str = ""
    #: What went wrong on the way (ClearML failed): the local sink then saves the run.
    problems: tuple[str, ...] = ()
    #: ClearML holds the whole run (final metrics, examples): copies kept only for safety may go.
    reported: bool = False

    def __add__(self, other: Where | None) -> Where:
        """What is known after ``other`` was reported too: its fields where it set them, problems added up
        (each once: a sink may say again, at ``close``, what it said at ``finish``)."""
        if other is None:
            return self
        return Where(
            task_id=other.task_id or self.task_id,
            session_dir=other.session_dir or self.session_dir,
            journal_dir=other.journal_dir or self.journal_dir,
            saved_to=other.saved_to or self.saved_to,
            prefix=other.prefix or self.prefix,
            problems=self.problems + tuple(p for p in other.problems if p not in self.problems),
            reported=self.reported or other.reported,
        )


@dataclass
class Update:
    """What the run gained since the last update, as handed to each sink."""

    #: Examples so far, and the evaluation's own time so far.
    count: int
    duration: float
    #: metric -> (first, end) positions of its values new since the last update; read them from ``series``.
    new: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: New details: a row per single example, a block per batch (``details``).
    details: list[Row | Block] = field(default_factory=list)
    #: metric -> new progress points (and running means).
    points: dict[str, Points] = field(default_factory=dict)
    #: metric -> when the example of each point (and of each running mean) was scored, epoch seconds.
    times: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    #: When this update was made (epoch seconds).
    time: float = 0.0
    #: The last update: the run has ended (``run.status`` says how).
    final: bool = False
    #: metric -> its storage, for the positions in ``new``.
    series: dict[str, Series] = field(default_factory=dict, repr=False)


class RunView(Protocol):
    """A run as sinks (and the numbers made from it) see it: read, never written."""

    @property
    def name(self) -> str: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def call(self) -> CallInfo: ...
    @property
    def count(self) -> int: ...
    @property
    def series(self) -> Mapping[str, Series]: ...
    @property
    def renamed(self) -> Mapping[str, str]:
        """field -> the name its values are recorded under, for fields named like tracked's own values."""
        ...

    @property
    def details(self) -> Details: ...
    @property
    def skipped(self) -> Mapping[str | None, tuple[int, str]]: ...
    @property
    def status(self) -> str: ...
    @property
    def error(self) -> BaseException | None: ...
    @property
    def returned(self) -> Any: ...
    @property
    def duration(self) -> float: ...
    @property
    def expected(self) -> int | None: ...
    @property
    def earlier(self) -> Earlier | None: ...
    @property
    def shard(self) -> tuple[int, int, str] | None: ...
    @property
    def extra_metrics(self) -> Mapping[str, Any]: ...
    @property
    def halted(self) -> bool:
        """Ended by the exit hook or a signal: the process is going."""
        ...

    def settle(self, block: Block) -> Block: ...


class Sink(Protocol):
    def start(self, run: RunView, where: Where) -> Where | None: ...

    def progress(self, run: RunView, update: Update) -> None: ...

    def finish(self, run: RunView, result: EvalResult, where: Where) -> Where | None: ...

    def close(self, run: RunView, result: EvalResult, where: Where) -> Where | None: ...
