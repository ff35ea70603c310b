"""One run out of parts: ``replay`` ends a run as the run of combined examples, with the same storage,
charts, final metrics, statistics and sinks as a run that had scored every example itself; ``merge``
joins the shards of an evaluation run apart (``shard=(index, count)``), from their results or sessions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..common.errors import MergeError
from ..store.session import detail_types
from .combine import CONSECUTIVE, Combined, Part, combine

if TYPE_CHECKING:
    from pathlib import Path

    from ..common.result import EvalResult
    from ..recording.run import Run
    from ..store.session import Session


def replay(combined: Combined, run: Run, returned: Any = None, extra: dict[str, Any] | None = None) -> EvalResult:
    """End ``run`` (started with its sinks, nothing yielded to it) as the run of the combined examples:
    its sinks see every example as if it had scored them all."""
    from ..recording.details import Block
    from ..recording.storage import Series
    from ..sinks.defaults import follow

    run.call = dataclasses.replace(run.call, dataset_num_eval=combined.dataset_num_eval)
    run.expected = combined.count  # the chart is planned for every example, not the part the run began with
    run.follower = follow(run)
    for metric, (indices, values) in combined.series.items():
        if len(values):
            series = run.series[metric] = Series(int(indices[0]))
            series.put(indices, values)
    if combined.details:
        columns: dict[str, Any] = dict(combined.details)  # object arrays: sequences of text or None
        run.details.add_block(Block(0, combined.count, columns, settled=True))
        run.details.kinds.update(combined.detail_types)
    run.count = combined.count
    run.skipped.update(combined.skipped)
    run.fixed_duration = combined.duration
    run.extra_metrics.update(extra or {})
    error = None if combined.error is None else RuntimeError(combined.error)
    return run.finish(combined.status, returned, error=error)


@dataclass
class Shard:
    """One shard of an evaluation run apart, as ``merge`` reads it."""

    index: int
    count: int
    evaluation: str
    name: str
    project: str
    where: str
    part: Part


def merge(
    parts: Sequence[EvalResult | Session | str | Path], id_field: str | None = None, **options: Any
) -> EvalResult:
    """One run out of the shards of an evaluation run apart (``shard=(index, count)``): their examples one
    after another (or matched by ``id_field``), reported as one run, with the exact final metrics,
    statistics and examples table of an unsharded run.

    Parts are the shards' EvalResults (Ray tasks, a process pool) or their sessions (folders, zips).
    Refused with MergeError when a shard is missing, given twice, or of another evaluation. ``options``:
    decorator options for the merged run (``project``, ``task_name``, ``verbose``, ...).
    """
    from ..common.call import CallInfo
    from ..common.options import check_options, resolve
    from ..recording.run import Run
    from ..sinks.defaults import open_run

    shards = [_shard(p, number) for number, p in enumerate(parts)]
    if not shards:
        raise MergeError("nothing to merge")
    if len({(s.count, s.evaluation) for s in shards}) > 1:
        listed = ", ".join(f"{s.where} (shard {s.index}/{s.count}, evaluation {s.evaluation[:8]})" for s in shards)
        raise MergeError(f"these runs are shards of different evaluations: {listed}")
    count, seen = shards[0].count, dict[int, str]()
    for shard in shards:
        if shard.index in seen:
            raise MergeError(f"shard {shard.index}/{count} is given twice: {seen[shard.index]} and {shard.where}")
        seen[shard.index] = shard.where
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise MergeError(f"shards missing: {', '.join(f'{i}/{count}' for i in missing)} (given {len(seen)})")
    first = shards[0]
    settings, _ = resolve(check_options({"project": first.project, "task_name": first.name, **options}))
    settings = settings._replace(shard="")
    combined = combine([s.part for s in shards], CONSECUTIVE, id_field or settings.id_field or None)
    name, call = settings.task_name or first.name, CallInfo(yields=True)
    run = open_run(settings, name, call, terminal=False) if settings.enabled else Run(settings, name, call, [])
    return replay(combined, run, extra={"num_shards": count})


def by_evaluation(sessions: Sequence[Session]) -> tuple[list[list[Session]], list[tuple[Session, str]]]:
    """The sessions grouped by the evaluation they are shards of (in the order first seen), and those that
    are no shard, each with why: a folder of many runs (the offline cache) merges each evaluation in it."""
    groups: dict[tuple[str, str], list[Session]] = {}
    others: list[tuple[Session, str]] = []
    for session in sessions:
        state = {} if session.journal is None else session.journal.state
        if "shard" not in state:
            why = "no tracked journal" if session.journal is None else "not a shard (run without shard=(index, count))"
            others.append((session, why))
            continue
        shard = state["shard"]
        count = str(shard[1]) if isinstance(shard, list) and len(shard) == 2 else f"? {session.path}"  # edited
        groups.setdefault((str(state.get("evaluation", "")), count), []).append(session)
    return list(groups.values()), others


def _shard(given: EvalResult | Session | str | Path, number: int) -> Shard:
    from ..common.result import EvalResult
    from ..store.session import Session, read_session

    if isinstance(given, EvalResult):
        if given._shard is None:
            raise MergeError(f"result {number} is not a shard (run it with shard=(index, count))")
        index, count, evaluation, name, project = given._shard
        duration = float(given.get("duration_seconds", 0.0))
        error = None if given.status == "completed" else given.status
        part = Part.of_frame(given.examples, index, duration, given.status, error)
        length = given.get("dataset_num_eval")
        part.dataset_num_eval = int(length) if isinstance(length, (int, float)) else None
        return Shard(index, count, evaluation, name, project, f"result {number}", part)
    session = given if isinstance(given, Session) else read_session(given)
    journal = session.journal
    if journal is None or "shard" not in journal.state:
        raise MergeError(f"{session.path}: not a shard (run it with shard=(index, count))")
    try:
        index, count = (int(x) for x in journal.state["shard"])
    except (TypeError, ValueError, OverflowError):  # an edited run.json
        raise MergeError(
            f"{session.path}: its shard {str(journal.state['shard'])[:40]!r} is not (index, count)"
        ) from None
    if journal.status in ("running", "interrupted"):  # its examples so far are not the shard's
        what = "still running" if journal.status == "running" else "interrupted (its process died; resume=True ends it)"
        raise MergeError(f"{session.path}: shard {index}/{count} is {what}; merge shards once each has ended")
    series = {name: (indices.astype(np.int64), values) for name, (indices, values) in journal.series.items()}
    import pandas as pd

    said = len(journal.problems)
    details: dict[str, npt.NDArray[Any]] = journal.detail_columns()  # streamed into columns, never a dict each
    session.problems.extend(f"journal: {problem}" for problem in journal.problems[said:])
    for column in details.values():
        column[pd.isna(column)] = None  # an example without the detail: None, as a run holds it
    part = Part(
        index=index, count=journal.count, duration=float(journal.state.get("duration", 0.0)), status=journal.status,
        error=journal.state.get("error"), series=series, details=details,
        dataset_num_eval=expected if type(expected := journal.state.get("expected")) is int else None,
        detail_types=detail_types(journal.state),
    )  # fmt: skip
    evaluation = str(journal.state.get("evaluation", ""))
    return Shard(index, count, evaluation, session.name, session.project, str(session.path), part)
