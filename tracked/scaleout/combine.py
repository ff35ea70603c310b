"""The examples of many parts (ranks, shards) as one run's, at their global indices: pure numpy.

Each part is described by a ``Part`` (its examples' values and details, its
count, time and status), from a finished run or a per-example table.
``combine`` puts the parts' examples at their global indices (interleaved
as ``DistributedSampler`` deals them, one after another for shards, or by
an id field, which also drops duplicates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..common.errors import MergeError
from ..common.values import merge_kind

if TYPE_CHECKING:
    import pandas as pd

    from ..recording.sink import RunView

INTERLEAVED, CONSECUTIVE = "interleaved", "consecutive"


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
    #: field -> the type its details were yielded with (``common.values.detail_kind``).
    detail_types: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_run(cls, run: RunView, index: int) -> Part:
        """A finished run's examples (its series frozen by its end)."""
        series = {name: (s.frozen_index(), s.freeze()) for name, s in run.series.items()}
        return cls(
            index=index, count=run.count, duration=run.duration, status=run.status,
            error=None if run.error is None else f"{type(run.error).__name__}: {run.error}",
            series=series, details=run.details.columns(run.count), skipped=dict(run.skipped),
            dataset_num_eval=run.call.dataset_num_eval, detail_types=dict(run.details.kinds),
        )  # fmt: skip

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, index: int, duration: float, status: str, error: str | None) -> Part:
        """From a per-example DataFrame (``result.examples``, ``Session.examples()``): the columns its
        ``attrs["details"]`` names are details (kept as the texts they were written as, with their type),
        the others metrics (NaN: absent); without that list, numeric columns are metrics."""
        from ..common.values import TEXT, dtype_kind

        series: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        details: dict[str, npt.NDArray[Any]] = {}
        kinds: dict[str, str] = {}
        named = frame.attrs.get("details")
        for name, column in frame.items():
            numeric = column.dtype.kind in "fiub"
            if (str(name) not in named) if isinstance(named, list) else numeric:
                values = np.asarray(column.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)
                present = ~np.isnan(values)
                series[str(name)] = (np.flatnonzero(present).astype(np.int64), values[present])
                continue
            kind = dtype_kind(column.dtype) if numeric else TEXT
            write = repr if kind == "float" else str  # as a single yield writes the value
            values = column.to_numpy(dtype=object)
            missing = column.isna().to_numpy()
            texts = np.array(
                [None if gone else (v if kind == TEXT else write(v)) for v, gone in zip(values, missing, strict=True)],
                dtype=object,
            )
            details[str(name)], kinds[str(name)] = texts, kind
        return cls(index=index, count=len(frame), duration=duration, status=status, error=error,
                   series=series, details=details, detail_types=kinds)  # fmt: skip


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
    #: field -> the type its details were yielded with, where every part agrees (else text).
    detail_types: dict[str, str] = field(default_factory=dict)


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
    kinds: dict[str, str] = {}
    for part in parts:
        for name, kind in part.detail_types.items():
            merge_kind(kinds, name, kind)
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
        detail_types=kinds,
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
