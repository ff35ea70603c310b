"""Evaluations run by every rank of a ``torch.distributed`` job (torchrun, Accelerate, Lightning).

Each rank scores its shard as usual, without sinks of its own. When its call
ends, the ranks exchange what they scored through a gloo group made from the
job's own process group at the start of the call (no sockets, files or
servers of tracked's), and each combines the parts into the same global run:
rank 0 reports it (one ClearML task), every rank gets the same EvalResult,
like torchmetrics' synced ``compute()``.

torch is never imported here: a job that uses torch.distributed has imported
it already, and ``import tracked`` must not.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..common.errors import DistributedEvalError
from ..common.warn import warn
from ..recording.run import Run

if TYPE_CHECKING:
    from ..common.call import CallInfo
    from ..common.options import Settings
    from ..common.result import EvalResult
    from ..sinks.defaults import Opening


@dataclass
class Ranks:
    rank: int
    world: int
    group: Any  # the gloo group the parts are gathered over, with this call's timeout


def ranks(settings: Settings) -> Ranks | None:
    """This process's rank in an initialised process group of more than one rank, unless ``distributed``
    is off; None otherwise. Makes the gloo group every rank will gather over (a collective: all ranks
    call the decorated function, so all of them get here)."""
    if not settings.distributed or "torch.distributed" not in sys.modules:
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    timeout = datetime.timedelta(seconds=settings.gather_timeout)
    group = dist.new_group(backend="gloo", timeout=timeout)
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), group=group)


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class RankRun(Run):
    """One rank's part of a distributed evaluation: it scores its examples without sinks of its own, and
    its end gathers every rank's part into the global run (``report_run``: rank 0's, opened with the call by
    ``open_report``, its ClearML task made while the other ranks score; None on the other ranks).

    It is opened first: from then on a signal or the process's exit ends it (``stop``). Rank 0 ended so while
    its global run is still being opened (ClearML creating the task) does not wait for the others (a rank that
    died is why torchrun ends it) but records its own part as a failed run in that run's place."""

    def __init__(
        self, settings: Settings, name: str, call: CallInfo, ranks: Ranks, opening: Opening | None = None
    ) -> None:
        super().__init__(settings, name, call, [])
        self.ranks = ranks
        #: Rank 0: the global run, until ``open_report`` opens it.
        self.opening = opening
        self.report_run: Run | None = None

    def open_report(self) -> None:
        """Rank 0: open the global run now (ClearML creates its task), this rank's run holding the signals and
        the exit meanwhile. The global run never ends on its own: it ends with this one, gathered."""
        from ..recording import lifecycle
        from ..recording.run import status_of

        if self.opening is None:
            return
        try:
            report = self.opening.open()
        except BaseException as exc:  # an interrupt inside ClearML's task creation: the part is recorded
            self.halted = True
            self.finish(status_of(exc), error=exc)
            raise
        lifecycle.closed(report)
        self.report_run = report

    def finish(
        self, status: str, returned: Any = None, error: BaseException | None = None, drop_last: bool = False
    ) -> EvalResult:
        from ..recording.lifecycle import signals_held

        try:
            with signals_held():
                if self.halted and self.report_run is None and self.opening is not None:
                    return self._alone(status, returned, error, drop_last)
                return self._conclude(status, returned, error, drop_last)
        except DistributedEvalError:  # meant for the caller: every rank raises it
            raise
        except Exception as exc:  # noqa: BLE001 - never break the user's evaluation
            warn(f"{self.name}: gathering the ranks failed ({type(exc).__name__}: {exc}); returning this rank's")
            return self.result or super().finish(status, returned, error)

    def _alone(self, status: str, returned: Any, error: BaseException | None, drop_last: bool) -> EvalResult:
        """Rank 0 ended by a signal or the exit (``halted``) while its global run was being opened: no
        gathering; its own part is recorded as a failed run, without ClearML (its task never came up)."""
        from .combine import Part, combine
        from .merge import replay

        if self.result is not None or not self.seal(status, returned, error, drop_last):
            return self.result or self.counted(status, returned)
        own = self.ranks
        self.result = self.counted(status, returned)
        if self.opening is None:
            return self.result
        cause = "ended by a signal or the process exiting" if error is None else f"interrupted ({_said(error)})"
        message = (
            f"rank {own.rank} of {own.world} was {cause} before the ranks gathered their examples; ClearML's task "
            "was still being created: this rank's part is recorded without it"
        )
        report = self.opening.instead(message)
        report.halted = True  # the process is going: its end is kept short
        part = Part.of_run(self, own.rank)
        part.status, part.error = "failed", f"{self.name}: {message}"
        self.result = replay(combine([part]), report, returned)
        return self.result

    def _conclude(self, status: str, returned: Any, error: BaseException | None, drop_last: bool) -> EvalResult:
        """End this rank's part, gather every rank's, and make the global run (reported by rank 0)."""
        import torch.distributed as dist

        from .combine import INTERLEAVED, Part, combine
        from .merge import replay

        own = self.ranks
        self.seal(status, returned, error, drop_last)  # this rank's part: counted, frozen; it has no sinks
        part = Part.of_run(self, own.rank)
        parts: list[Any] = [None] * own.world
        try:
            dist.all_gather_object(parts, part, group=own.group)
        except Exception as exc:  # a rank died or hangs: nobody waits for ever
            message = (
                f"{self.name}: rank {own.rank} of {own.world} could not gather the other ranks' examples "
                f"(a rank died, or did not answer within gather_timeout={self.settings.gather_timeout:g} s): "
                f"{type(exc).__name__}: {str(exc)[:300]}"
            )
            if self.report_run is not None:  # what this rank scored is recorded, as a failed run
                part.status, part.error = "failed", message
                replay(combine([part]), self.report_run, returned)
            raise DistributedEvalError(message) from exc
        combined = combine(parts, INTERLEAVED, self.settings.id_field or None)
        if combined.duplicates:
            twice = combined.duplicates
            warn(
                f"{self.name}: {twice} example{'s' if twice != 1 else ''} scored twice (by id) "
                f"{'are' if twice != 1 else 'is'} counted once"
            )
        # Other ranks: the same run, unreported.
        report = self.report_run or Run(self.settings, self.name, self.call, [])
        result = replay(combined, report, returned, {"num_ranks": own.world})
        where = [(result.task_id, result.session_dir, result.saved_to)]
        dist.broadcast_object_list(where, src=0, group=own.group)
        result._task_id, result._session_dir, result._saved_to = where[0]
        self.result = result
        if combined.status != "completed" and status == "completed":
            raise DistributedEvalError(f"{self.name}: another rank did not complete: {combined.error}")
        return result
