"""One call of a decorated evaluation: its sinks, its clock, and its end.

The examples themselves are taken in by ``Recorder`` (the hot path). While
the run goes, a follower in another thread (``live``) hands what was
recorded to the sinks; the final metrics, statistics and every sink's
``finish`` happen once, in ``Run.finish``.

    decorator -> Run (add ... finish) -> sinks: ClearML, journal, local, console, terminal
    Run -> Live (a background thread) -> each sink's progress
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..common.testing import pause_at
from ..common.warn import warn
from .recorder import Recorder
from .sink import Where
from .storage import Series

if TYPE_CHECKING:
    from ..common.call import CallInfo
    from ..common.options import Settings
    from ..common.result import EvalResult
    from ..store.resume import Earlier
    from .sink import Sink

#: Run states, as recorded in the session (``tracked_status``).
COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"


def status_of(exc: BaseException) -> str:
    """'failed' for errors; 'stopped' for interrupts, exits and cancellation."""
    return FAILED if isinstance(exc, Exception) else STOPPED


class Follower(Protocol):
    """What follows a run while it goes (``live.Live``): stopped, then told the end."""

    def stop(self) -> None: ...

    def flush(self, final: bool = False) -> None: ...


class Run(Recorder):
    """One evaluation call: its examples (``Recorder``), the sinks it goes to, its clock and its end."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        call: CallInfo,
        sinks: list[Sink],
        earlier: Earlier | None = None,
        spill: Callable[[int, str, str], bool] | None = None,
    ) -> None:
        super().__init__(settings, name, spill)
        self.call = call
        self.sinks = sinks
        self.returned: Any = None
        self.status = "running"
        self.error: BaseException | None = None
        self.result: EvalResult | None = None
        #: Examples the run expects in all (the dataset's length), when known: the chart is planned for it.
        self.expected = call.dataset_num_eval
        #: Where the run goes, as its sinks reported it (the ClearML task, the session and journal folders).
        self.where = Where()
        #: The run this one continues (``resume=True``), with the examples it had.
        self.earlier = earlier
        self._base_duration = 0.0
        self.fixed_duration: float | None = None
        #: Final metrics a run made of parts adds (``num_ranks``, ``num_shards``).
        self.extra_metrics: dict[str, Any] = {}
        if earlier is not None:
            self._continue(earlier)
        self.follower: Follower | None = None
        self._catching = threading.Lock()
        for sink in sinks:
            pause_at(f"start:{type(sink).__name__}")
            try:
                self.where += sink.start(self, self.where)
            except Exception as exc:  # noqa: BLE001 - sinks should not raise; if one does, the run goes on
                warn(f"{name}: {type(sink).__name__} could not start ({type(exc).__name__}: {exc})")
        # The clock starts after the sinks: duration_seconds is the evaluation's
        # own time, comparable between runs, not ClearML's start-up (~1 s at first).
        self._started = time.perf_counter()
        self._ended: float | None = None
        from . import lifecycle  # signal/threading/atexit: at the first run, not at import

        lifecycle.opened(self)

    def catch_up(self, ending: bool = False) -> None:
        """Sinks that start in the background (``ready``: ClearML making its task) and are there now: what
        they made is added to ``where`` and told to the sinks after them (``joined``: the journal moves into
        ClearML's offline session). Called before each flush and, ``ending``, once at the end (the sink then
        waits for its start, or gives up on it)."""
        with self._catching:
            for i, sink in enumerate(self.sinks):
                ready = getattr(sink, "ready", None)
                if not callable(ready):
                    continue
                try:
                    late = ready(self, ending)
                except Exception as exc:  # noqa: BLE001 - sinks should not raise; if one does, the run goes on
                    warn(f"{self.name}: {type(sink).__name__} could not start ({type(exc).__name__}: {exc})")
                    continue
                if late is None:
                    continue
                self.where += late
                for later in self.sinks[i + 1 :]:
                    joined = getattr(later, "joined", None)
                    try:
                        self.where += joined(self, self.where) if callable(joined) else None
                    except Exception as exc:  # noqa: BLE001
                        warn(f"{self.name}: {type(later).__name__} failed ({type(exc).__name__}: {exc})")

    def _continue(self, earlier: Earlier) -> None:
        """Take in the examples of the run this one resumes, as if they had just been yielded."""
        for name, (indices, values) in earlier.series.items():
            if len(values):
                series = self.series[name] = Series(int(indices[0]))
                series.extend(indices, values)
        self.details.extend(earlier.details)
        self.details.kinds.update(earlier.detail_types)
        self.skipped.update(earlier.skipped)
        self.count = earlier.count
        self._base_duration = earlier.duration

    @functools.cached_property
    def shard(self) -> tuple[int, int, str] | None:
        """(index, count, evaluation) of a run made as one shard of an evaluation (``shard=``), else None."""
        from ..common.options import shard_of
        from ..store.resume import evaluation_of

        shard = shard_of(self.settings)
        return None if shard is None else (*shard, evaluation_of(self.settings, self.name, self.call))

    @property
    def duration(self) -> float:
        """The evaluation's own time so far (a resumed run's earlier time included)."""
        if self.fixed_duration is not None:  # a run made of parts: the slowest part's time
            return self.fixed_duration
        end = time.perf_counter() if self._ended is None else self._ended
        return self._base_duration + end - self._started

    # -- the end ------------------------------------------------------------
    def finish(
        self, status: str, returned: Any = None, error: BaseException | None = None, drop_last: bool = False
    ) -> EvalResult:
        """End the run: final metrics, statistics, every sink told once; the result.

        A failure in tracked's own bookkeeping is a warning, never the caller's problem: what was
        counted is still returned. ``drop_last``: ended by the exit hook or a signal while the
        evaluation's thread may be adding an example; that example is left out.
        """
        from .lifecycle import signals_held

        try:
            with signals_held():  # a second Ctrl-C or SIGTERM waits until the run is written
                if self.result is not None:
                    return self.result
                if not self.seal(status, returned, error, drop_last):  # being ended in another thread
                    return self.counted(status, returned)
                return self.report()
        except Exception as exc:  # noqa: BLE001 - never break the user's evaluation
            warn(f"{self.name}: reporting the run failed ({type(exc).__name__}: {exc}); returning what was counted")
            self.status, self.returned, self.error = status, returned, error
            self.result = self.counted(status, returned)
            return self.result

    def seal(
        self, status: str, returned: Any = None, error: BaseException | None = None, drop_last: bool = False
    ) -> bool:
        """Stop taking examples, stop the clock, hand the sinks the last examples and freeze the values;
        False when the run was sealed already (ended, or being ended in another thread)."""
        if self._sealed:
            return False
        from . import lifecycle

        # Stop taking examples first, then count what was taken. Ended by the exit
        # hook or a signal while the evaluation's thread may be adding one
        # (``drop_last``): that example is left out and the storage is copied, not released.
        self._sealed = True
        drop_last = drop_last or (error is not None and self.adding(error))  # raised halfway through one
        own = not drop_last
        if drop_last:
            self.count = max(0, self.count - 1)
        lifecycle.closed(self)
        self._ended = time.perf_counter()
        self.status, self.returned, self.error = status, returned, error
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
        self.catch_up(ending=True)  # a sink still starting (ClearML making its task): there now, or given up
        if follower is not None:
            if own:
                for series in self.series.values():
                    if series.pending:
                        series.flush()
            follower.flush(final=True)  # the last examples and chart points, before the final report
        count = self.count
        if self.earlier is not None and self.expected is not None and count > self.expected:
            warn(  # one example per dataset item was the contract of leaving the done ones out
                f"{self.name}: resumed after example {self.earlier.count:,}, it recorded {count:,} examples from a "
                f"dataset of {self.expected:,} items: its items are not single examples (batches?), and the "
                f"{self.earlier.count:,} items left out of it were never scored; run it again without resume",
                stacklevel=4,
            )
        if follower is None:  # no live thread took the batches' texts: settle them now
            self.details.settle(count, self.settle)
        for series in self.series.values():
            series.freeze(count, release=own)
        return True

    def report(self) -> EvalResult:
        """The sealed run's result (final metrics, statistics), handed to every sink once."""
        from ..common.result import EvalResult
        from .summary import examples_frame, final_metrics, statistics

        metrics = final_metrics(self)
        result = self.result = EvalResult(metrics, self.status, self.returned, examples=lambda: examples_frame(self))
        if self.shard is not None:
            result._shard = (*self.shard, self.settings.task_name or self.name, self.settings.project)
        try:
            result._stats, result._group_stats = statistics(self)
        except Exception as exc:  # noqa: BLE001 - error bars must not cost the result
            warn(f"{self.name}: could not compute the statistics ({type(exc).__name__}: {exc})")
        where = self.where
        for step in ("finish", "close"):  # every sink reports what it holds, then every sink lets go
            for sink in self.sinks:  # each on its own: one that fails must not cost the others, nor the result
                pause_at(f"{step}:{type(sink).__name__}")
                try:
                    where += getattr(sink, step)(self, result, where)
                except Exception as exc:  # noqa: BLE001 - sinks should not raise; if one does, the run goes on
                    warn(f"{self.name}: {type(sink).__name__} failed at the end ({type(exc).__name__}: {exc})")
        self.where = where
        result._task_id, result._session_dir, result._saved_to = where.task_id, where.session_dir, where.saved_to
        result._prefix, result._problems = where.prefix, list(where.problems)
        return result

    def counted(self, status: str, returned: Any) -> EvalResult:
        """The least an end that failed (or is under way in another thread) hands back: what was counted."""
        from ..common.result import EvalResult

        return EvalResult({"num_examples": self.count, "duration_seconds": self.duration}, status, returned)

    def stop(self) -> None:
        """The process ends (the exit hook, a signal) with this run open: finish it as stopped.

        Its evaluation's thread may be halfway through an example (a signal, a daemon thread at exit)."""
        if self.result is None:
            self.halted = True  # the process is going: its examples are in the journal, the end is kept short
            self.finish(STOPPED, drop_last=self.adding())

    def forsake(self) -> None:
        """This process is a fork of the one running the evaluation: the run is the parent's, not ours to end."""
        from ..common.result import EvalResult

        self._sealed = True
        self.follower = None
        self.sinks = []
        self.result = EvalResult({"num_examples": self.count}, STOPPED)
