"""The sinks a run goes to by default, in the order they are told, and the live thread that feeds them; and the
run that records in place of one whose process was ended while its sinks were starting (``Opening``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..recording.live import Live
from ..recording.run import Run
from ..recording.sink import Where
from .clearml.sink import ClearMLSink
from .console import ConsoleSink
from .journal import JournalSink
from .local import LocalSink
from .terminal import TerminalSink

if TYPE_CHECKING:
    from ..common.call import CallInfo
    from ..common.options import Settings
    from ..common.result import EvalResult
    from ..recording.sink import RunView, Sink, Update
    from ..store.resume import Earlier


def default_sinks(terminal: bool = True, background: bool = True) -> list[Sink]:
    """Where a run goes: ClearML, its journal, the local fallback, the console summary, and (unless the run
    is made at the end, from parts) the terminal's progress display.

    The order is what each is handed: the journal moves into ClearML's offline session, the local sink
    saves what ClearML could not take, and the console says where all of it went. ``background``: ClearML
    makes its task while the evaluation scores its first examples (the journal holds them meanwhile)."""
    sinks: list[Sink] = [ClearMLSink(background), JournalSink(), LocalSink(), ConsoleSink()]
    return [*sinks, TerminalSink()] if terminal else sinks


def open_run(
    settings: Settings, name: str, call: CallInfo, earlier: Earlier | None = None, terminal: bool = True
) -> Run:
    """A run going to the default sinks (started with it), its over-long details kept by its journal."""
    return Opening(settings, name, call, terminal).open(earlier)


def follow(run: Run) -> Live:
    """The live thread of a run: the journal is told first, so the chart never shows examples it lacks."""
    return Live(run, first=[s for s in run.sinks if isinstance(s, JournalSink)])


class Opening:
    """A run about to be opened with the default sinks, while something else holds the process's signals and
    exit (rank 0 of a ``torch.distributed`` job: its rank's run). Ended before the run is open (a signal, the
    exit, while ClearML creates its task), that something records in its place with ``instead``."""

    def __init__(
        self, settings: Settings, name: str, call: CallInfo, terminal: bool = True, background: bool = True
    ) -> None:
        self.settings, self.name, self.call = settings, name, call
        self.sinks = default_sinks(terminal, background)

    def open(self, earlier: Earlier | None = None) -> Run:
        """The run, its sinks started (ClearML's task made now, or begun in the background), its over-long
        details kept by its journal."""
        journal = next(s for s in self.sinks if isinstance(s, JournalSink))
        return Run(self.settings, self.name, self.call, self.sinks, earlier, spill=journal.spill)

    def instead(self, problem: str) -> Run:
        """A run recording without ClearML, because ``problem``: its journal goes into the offline session
        ClearML had made by then (if any; into the journal begun there, if any), and the local sink saves it
        as for any ClearML failure. Nothing of ClearML's is called: the thread that was creating the task was
        stopped anywhere inside it."""
        clearml = next(s for s in self.sinks if isinstance(s, ClearMLSink))
        journal = next(s for s in self.sinks if isinstance(s, JournalSink))
        task = clearml.task
        made = Where(
            task_id=None if task is None else str(task.id),
            session_dir=clearml.session_dir,
            journal_dir=journal.folder,  # begun already: this run's journal, never a second one beside it
            problems=(problem,),
        )
        sinks: list[Sink] = [_Made(made), JournalSink(), LocalSink(), ConsoleSink()]
        return Run(self.settings, self.name, self.call, sinks)


class _Made:
    """The first sink of a run recorded in place of another (``Opening.instead``): what that run's sinks
    had made, and why it was not opened."""

    def __init__(self, where: Where) -> None:
        self.where = where

    def start(self, run: RunView, where: Where) -> Where:
        return self.where

    def progress(self, run: RunView, update: Update) -> None:
        pass

    def finish(self, run: RunView, result: EvalResult, where: Where) -> None:
        pass

    def close(self, run: RunView, result: EvalResult, where: Where) -> None:
        pass
