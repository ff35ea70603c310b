"""One run out of many parts: the ranks of a distributed evaluation, or shards run apart.

Each part is described by a ``Part`` (its examples' values and details, its
count, time and status), from a finished run, a session or an EvalResult.
``combine`` puts the parts' examples at their global indices (interleaved
as ``DistributedSampler`` deals them, one after another for shards, or by
an id field, which also drops duplicates), and ``replay`` makes one run of
them: the same storage, charts, final metrics, statistics and sinks as a run
that had scored every example itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from ._result import EvalResult
    from ._run import Run
    from .session import Session

INTERLEAVED, CONSECUTIVE = "interleaved", "consecutive"


class MergeError(ValueError):
    """Parts that do not make one run (missing, duplicated, of different evaluations); the message says which."""


@dataclass
class Part:
    """What one rank or shard scored, in its own example order (local index 0, 1, ...)."""

    index: int
    count: int
    duration: float
    status: str = "completed"
    error: str | None = None
    #: metric -> (local example indices, values)
    series: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = field(default_factory=dict)
    #: field -> texts per local example (None: absent)
    details: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    skipped: dict[str | None, tuple[int, str]] = field(default_factory=dict)
    #: The length of the dataset this part was given (the whole dataset, or its shard), if known.
    dataset_num_eval: int | None = None

    @classmethod
    def of_run(cls, run: Run, index: int) -> Part:
        """A finished run's examples (its series frozen by its end)."""
        series = {name: (s.frozen_index(), s.freeze()) for name, s in run.series.items()}
        return cls(
            index=index, count=run.count, duration=run.duration, status=run.status,
            error=None if run.error is None else f"{type(run.error).__name__}: {run.error}",
            series=series, details=run.details.columns(run.count), skipped=dict(run.skipped),
            dataset_num_eval=run.call.dataset_num_eval,
        )  # fmt: skip

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, index: int, duration: float, status: str, error: str | None) -> Part:
        """From a per-example DataFrame (``result.examples``, ``Session.examples()``): float columns are
        metrics (NaN: absent), the others details."""
        series: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        details: dict[str, npt.NDArray[Any]] = {}
        for name, column in frame.items():
            if column.dtype.kind in "fiub":
                values = np.asarray(column.to_numpy(dtype=float), dtype=np.float64)
                present = ~np.isnan(values)
                series[str(name)] = (np.flatnonzero(present).astype(np.int64), values[present])
            else:
                texts = np.asarray(column.to_numpy(dtype=object), dtype=object)
                texts[column.isna().to_numpy()] = None
                details[str(name)] = texts
        return cls(index=index, count=len(frame), duration=duration, status=status, error=error,
                   series=series, details=details)  # fmt: skip


@dataclass
class Combined:
    """The parts as one run's examples, at global indices 0 .. count-1."""

    count: int
    series: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]
    details: dict[str, npt.NDArray[Any]]
    duration: float
    status: str
    error: str | None
    skipped: dict[str | None, tuple[int, str]]
    duplicates: int = 0
    #: Every part given the whole dataset: its length; each given a shard: their sum; else None.
    dataset_num_eval: int | None = None


def combine(parts: Sequence[Part], order: str = INTERLEAVED, id_field: str | None = None) -> Combined:
    """The parts' examples at their global indices.

    ``interleaved``: part r's i-th example is example i·n + r (``DistributedSampler``);
    ``consecutive``: part r's examples follow part r-1's. With ``id_field`` (a detail or
    metric every example has), examples are ordered by first appearance in that order and
    an id seen twice (the samples ``DistributedSampler`` pads onto the last ranks) is kept once.
    """
    parts = sorted(parts, key=lambda p: p.index)
    n = len(parts)
    positions = []  # per part: the global position of each local example
    offset = 0
    for rank, part in enumerate(parts):
        local = np.arange(part.count, dtype=np.int64)
        positions.append(local * n + rank if order == INTERLEAVED else local + offset)
        offset += part.count
    total = sum(p.count for p in parts)
    last = max(((p.count - 1) * n + r for r, p in enumerate(parts) if p.count), default=-1)
    if order == INTERLEAVED and last + 1 != total:  # shards uneven past one example leave holes: close them up
        ranks = np.concatenate(positions)
        dense = np.empty(int(ranks.max()) + 1, dtype=np.int64)
        dense[np.sort(ranks)] = np.arange(total)
        positions = [dense[p] for p in positions]
    duplicates = 0
    if id_field:
        positions, total, duplicates = _by_id(parts, positions, total, id_field)
    series: dict[str, tuple[list[Any], list[Any]]] = {}
    details: dict[str, npt.NDArray[Any]] = {}
    for part, where in zip(parts, positions, strict=True):
        for name, (local, values) in part.series.items():
            placed = where if len(local) == part.count else where[local]  # every example has it: no gather
            indices, chunks = series.setdefault(name, ([], []))
            if duplicates:
                keep = placed >= 0
                placed, values = placed[keep], values[keep]
            indices.append(placed)
            chunks.append(values)
        for name, texts in part.details.items():
            column = details.get(name)
            if column is None:
                column = details[name] = np.full(total, None, dtype=object)
            keep = where >= 0
            column[where[keep]] = texts[: part.count][keep]
    merged: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
    for name, (indices, chunks) in series.items():  # placed at their global indices: no sort
        index = np.concatenate(indices)
        column = np.empty(total, dtype=np.float64)
        column[index] = np.concatenate(chunks)
        if len(index) == total:  # every example has the metric
            merged[name] = (np.arange(total, dtype=np.int64), column)
            continue
        present = np.zeros(total, dtype=bool)
        present[index] = True
        kept = np.flatnonzero(present).astype(np.int64)
        merged[name] = (kept, np.ascontiguousarray(column[kept]))
    failed = [p for p in parts if p.status != "completed"]
    skipped: dict[str | None, tuple[int, str]] = {}
    for part in parts:
        for key, (count, first) in part.skipped.items():
            before = skipped.get(key, (0, first))
            skipped[key] = (before[0] + count, before[1])
    return Combined(
        count=total, series=merged, details=details, duration=max((p.duration for p in parts), default=0.0),
        status=failed[0].status if failed else "completed",
        error="; ".join(f"part {p.index}: {p.error or p.status}" for p in failed) or None,
        skipped=skipped, duplicates=duplicates, dataset_num_eval=_dataset_length(parts, duplicates),
    )  # fmt: skip


def _dataset_length(parts: Sequence[Part], duplicates: int) -> int | None:
    """Each part given the whole dataset (every length the same, and more than that part scored): that
    length; each given its shard: their sum, less the duplicates found by id; unknown for any: None."""
    lengths = [p.dataset_num_eval for p in parts]
    if None in lengths:
        return None
    known = [length for length in lengths if length is not None]
    whole = len(set(known)) == 1 and len(parts) > 1 and known[0] > parts[0].count
    return known[0] if whole else sum(known) - duplicates


def _by_id(
    parts: Sequence[Part], positions: list[npt.NDArray[np.int64]], total: int, id_field: str
) -> tuple[list[npt.NDArray[np.int64]], int, int]:
    ids = np.full(total, None, dtype=object)
    for part, where in zip(parts, positions, strict=True):
        if id_field in part.details:
            ids[where] = part.details[id_field][: part.count]
        elif id_field in part.series:
            local, values = part.series[id_field]
            ids[where[local]] = [repr(v) if not float(v).is_integer() else str(int(v)) for v in values.tolist()]
        else:
            raise MergeError(f"part {part.index} has no field {id_field!r} to identify its examples (id_field)")
    if any(i is None for i in ids):
        raise MergeError(f"some examples have no {id_field!r}: they cannot be matched across parts")
    _, first = np.unique(ids.astype(str), return_index=True)
    kept = np.sort(first)  # each id where it first appears, in global order; later copies: -1, left out
    new_position = np.full(total, -1, dtype=np.int64)
    new_position[kept] = np.arange(len(kept))
    return [new_position[where] for where in positions], len(kept), total - len(kept)


def replay(combined: Combined, run: Run, returned: Any = None, extra: dict[str, Any] | None = None) -> EvalResult:
    """End ``run`` (started with its sinks, nothing yielded to it) as the run of the combined examples:
    its sinks see every example as if it had scored them all."""
    from ._details import Block
    from ._live import Live
    from ._run import finish
    from ._storage import Series
    from .sinks.journal import JournalSink

    run.call = dataclasses.replace(run.call, dataset_num_eval=combined.dataset_num_eval)
    run.expected = combined.count  # the chart is planned for every example, not the part the run began with
    run.follower = Live(run, first=[s for s in run.sinks if isinstance(s, JournalSink)])
    for metric, (indices, values) in combined.series.items():
        if len(values):
            series = run.series[metric] = Series(int(indices[0]))
            series.put(indices, values)
    if combined.details:
        columns: dict[str, Any] = dict(combined.details)  # object arrays: sequences of text or None
        run.details.add_block(Block(0, combined.count, columns, settled=True))
    run.count = combined.count
    run.skipped.update(combined.skipped)
    run.fixed_duration = combined.duration
    run.extra_metrics.update(extra or {})
    error = None if combined.error is None else RuntimeError(combined.error)
    return finish(run, combined.status, returned, error=error)


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
    from ._call import CallInfo
    from ._decorator import default_sinks
    from ._options import check_options, resolve
    from ._run import Run

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
    sinks = default_sinks(terminal=False) if settings.enabled else []
    run = Run(settings, settings.task_name or first.name, CallInfo(yields=True), sinks)
    return replay(combined, run, extra={"num_shards": count})


def _shard(given: EvalResult | Session | str | Path, number: int) -> Shard:
    from ._result import EvalResult
    from .session import Session, read_session

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
    index, count = (int(x) for x in journal.state["shard"])
    series = {name: (indices.astype(np.int64), values) for name, (indices, values) in journal.series.items()}
    details: dict[str, npt.NDArray[Any]] = {}
    for position, fields in journal.details:
        for field_name, text in fields.items():
            if field_name not in details:
                details[field_name] = np.full(journal.count, None, dtype=object)
            if position < journal.count:
                details[field_name][position] = text
    part = Part(
        index=index, count=journal.count, duration=float(journal.state.get("duration", 0.0)), status=journal.status,
        error=journal.state.get("error"), series=series, details=details,
        dataset_num_eval=journal.state.get("expected"),
    )  # fmt: skip
    evaluation = str(journal.state.get("evaluation", ""))
    return Shard(index, count, evaluation, session.name, session.project, str(session.path), part)
