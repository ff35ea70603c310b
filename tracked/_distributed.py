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

from ._warn import warn

if TYPE_CHECKING:
    from ._call import CallInfo
    from ._options import Settings
    from ._result import EvalResult
    from ._run import Run


class DistributedEvalError(RuntimeError):
    """Raised on every rank when another rank failed, or did not answer within ``gather_timeout``."""


@dataclass
class Ranks:
    rank: int
    world: int
    group: Any  # the gloo group the parts are gathered over, with this call's timeout
    #: Rank 0's global run, its sinks started with the call (ClearML's task is made while the ranks
    #: score, as for any run, not at the end); filled with every rank's examples at the end.
    report: Run | None = None


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


def start_report(own: Ranks, settings: Settings, name: str, call: CallInfo) -> None:
    """On rank 0: the global run, its sinks started now (the ClearML task created while the ranks score)."""
    from ._decorator import default_sinks
    from ._run import Run

    if own.rank == 0:
        own.report = Run(settings, name, call, default_sinks(terminal=False))


def conclude(run: Run, status: str, returned: Any, error: BaseException | None) -> EvalResult:
    """End this rank's part, gather every rank's, and make the global run (reported by rank 0)."""
    import torch.distributed as dist

    from ._merge import INTERLEAVED, Part, combine, replay

    own: Ranks = run.ranks
    run.end(status, returned, error, part_only=True)  # this rank's part: counted, frozen; it has no sinks
    part = Part.of_run(run, own.rank)
    parts: list[Any] = [None] * own.world
    try:
        dist.all_gather_object(parts, part, group=own.group)
    except Exception as exc:  # a rank died or hangs: nobody waits for ever
        message = (
            f"{run.name}: rank {own.rank} of {own.world} could not gather the other ranks' examples "
            f"(a rank died, or did not answer within gather_timeout={run.settings.gather_timeout:g} s): "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        )
        if own.report is not None:  # what this rank scored is recorded, as a failed run
            part.status, part.error = "failed", message
            replay(combine([part]), own.report, returned)
        raise DistributedEvalError(message) from exc
    combined = combine(parts, INTERLEAVED, run.settings.id_field or None)
    if combined.duplicates:
        warn(f"{run.name}: {combined.duplicates} examples scored twice (by id) are counted once")
    from ._run import Run

    report = own.report or Run(run.settings, run.name, run.call, [])  # other ranks: the same run, unreported
    result = replay(combined, report, returned, {"num_ranks": own.world})
    where = [(result.task_id, result.session_dir, result.saved_to)]
    dist.broadcast_object_list(where, src=0, group=own.group)
    result._task_id, result._session_dir, result._saved_to = where[0]
    if combined.status != "completed" and status == "completed":
        raise DistributedEvalError(f"{run.name}: another rank did not complete: {combined.error}")
    return result
