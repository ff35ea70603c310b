"""The sinks a run goes to by default, in the order they are told, and the live thread that feeds them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..recording.live import Live
from ..recording.run import Run
from .clearml.sink import ClearMLSink
from .console import ConsoleSink
from .journal import JournalSink
from .local import LocalSink
from .terminal import TerminalSink

if TYPE_CHECKING:
    from ..common.call import CallInfo
    from ..common.options import Settings
    from ..recording.sink import Sink
    from ..store.resume import Earlier


def default_sinks(terminal: bool = True) -> list[Sink]:
    """Where a run goes: ClearML, its journal, the local fallback, the console summary, and (unless the run
    is made at the end, from parts) the terminal's progress display.

    The order is what each is handed: the journal is made inside ClearML's offline session, the local
    sink saves what ClearML could not take, and the console says where all of it went."""
    sinks: list[Sink] = [ClearMLSink(), JournalSink(), LocalSink(), ConsoleSink()]
    return [*sinks, TerminalSink()] if terminal else sinks


def open_run(
    settings: Settings, name: str, call: CallInfo, earlier: Earlier | None = None, terminal: bool = True
) -> Run:
    """A run going to the default sinks (started with it), its over-long details kept by its journal."""
    sinks = default_sinks(terminal)
    journal = next(s for s in sinks if isinstance(s, JournalSink))
    return Run(settings, name, call, sinks, earlier, spill=journal.spill)


def follow(run: Run) -> Live:
    """The live thread of a run: the journal is told first, so the chart never shows examples it lacks."""
    return Live(run, first=[s for s in run.sinks if isinstance(s, JournalSink)])
