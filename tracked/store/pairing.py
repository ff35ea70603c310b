"""Two runs over the same examples, matched by id: what ``tracked compare --paired`` tests."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..common.errors import SessionError
from .compare import cluster_field
from .session import Session

#: A whole number written as a float ("7.0"), as the journal writes a float id.
_WHOLE_FLOAT = re.compile(r"-?[0-9]+\.0+")

if TYPE_CHECKING:
    import pandas as pd

    from ..stats import Paired


@dataclass
class Pairing:
    """Two runs' examples matched by id (or index), one row per id, and what was done to match them."""

    first: pd.DataFrame
    second: pd.DataFrame
    clusters: Any = None
    notes: list[str] = field(default_factory=list)
    #: B − A per metric, once compared (``paired_rows``).
    rows: list[Paired] = field(default_factory=list)
    #: Detail columns (a float detail is no metric: never paired).
    details: set[str] = field(default_factory=set)


def pair(a: Session, b: Session, id_field: str = "id") -> Pairing:
    """The examples of two runs side by side, matched by ``id_field`` when both recorded it, else by index
    when both have as many examples; otherwise SessionError says why they cannot be paired.

    Examples without an id are left out (they cannot be matched); several samples of one id (sampling at a
    temperature, epochs) are averaged per id (Miller, section 4). Each is said in ``notes``.
    """
    cluster = cluster_field(a) or cluster_field(b)
    wanted = {id_field} if cluster is None else {id_field, cluster}  # the ids, never the texts: --paired reads few
    first, second = a.examples(details=wanted), b.examples(details=wanted)
    details = {*first.attrs.get("details", ()), *second.attrs.get("details", ())}  # a float detail is no metric
    for session, frame in ((a, first), (b, second)):
        if frame.empty:
            why = "the run recorded no example" if session.journal is not None else "only runs with a journal have them"
            raise SessionError(f"{session.path}: no per-example scores to pair ({why})")
    notes: list[str] = []
    clusters = None
    if id_field in first.columns and id_field in second.columns:
        # Integer ids on both sides (as yielded, read back as int64) match as numbers: no text made per example.
        whole = all(frame[id_field].dtype == np.int64 for frame in (first, second))
        # One run at a time: each run's examples are let go of as soon as its per-id table is made.
        first, clusters = _per_id(first, id_field, cluster, "A", notes, details, whole)
        second, _ = _per_id(second, id_field, cluster, "B", notes, details, whole)
        if not first.index.equals(second.index):  # the same ids in the same order need no aligning (no copy)
            first, second = first.align(second, join="inner", axis=0)
        if clusters is not None:
            clusters = clusters.reindex(first.index)
    elif len(first) != len(second):
        raise SessionError(
            f"cannot pair {a.path} ({len(first)} examples) with {b.path} ({len(second)}): "
            f"neither has the same number of examples nor an id field {id_field!r} in both (--id-field)"
        )
    else:
        notes.append(f"paired by position: {id_field!r} is not a field of both runs (--id-field)")
        if cluster is not None and cluster in first.columns:
            clusters = first[cluster]
    if first.empty:
        raise SessionError(f"cannot pair {a.path} with {b.path}: no {id_field!r} is in both runs")
    if cluster is not None:
        notes.append(f"standard errors clustered by {cluster!r}, as the runs were recorded")
    pairing = Pairing(first, second, None if clusters is None else clusters.to_numpy(dtype=object), notes)
    pairing.details = details
    return pairing


def _per_id(
    frame: pd.DataFrame,
    id_field: str,
    cluster: str | None,
    name: str,
    notes: list[str],
    details: set[str],
    whole: bool = False,
) -> tuple[pd.DataFrame, pd.Series[Any] | None]:
    """One row per id: the mean of each metric over the id's samples, and the id's cluster. ``whole``: the
    ids are int64 on both sides, compared as they are (``_id_key`` would make each the same text)."""
    import pandas as pd

    ids = frame[id_field] if whole else frame[id_field].map(_id_key)
    missing = int(ids.isna().sum())
    if missing:
        notes.append(f"{name}: {missing} example{'s' if missing != 1 else ''} without {id_field!r} left out")
        keep = ids.notna()
        frame, ids = frame[keep], ids[keep]
    metrics = [c for c in frame.columns if c != id_field and c not in details and frame[c].dtype.kind == "f"]
    values = frame[metrics]
    if not all(np.isfinite(values[m].to_numpy()).all() for m in metrics):  # ±inf is left out of a per-id mean
        values = values.where(np.isfinite(values))
    keys = ids.to_numpy()
    if whole and (len(keys) < 2 or bool((keys[1:] > keys[:-1]).all())):  # ascending: each id once, no grouping
        return values.set_axis(pd.Index(keys, copy=False)), _clusters(frame, cluster, keys)
    grouped = values.groupby(keys, sort=False)
    counts = grouped.size()
    if len(counts) and counts.max() > 1:
        repeated = int((counts > 1).sum())
        notes.append(
            f"{name}: {repeated} {id_field} value{'s' if repeated != 1 else ''} scored more than once "
            f"(up to {int(counts.max())} samples per {id_field}): averaged per {id_field}"
        )
        means = grouped.mean()
    else:
        means = values.set_axis(keys)
    return means, _clusters(frame, cluster, keys)


def _clusters(frame: pd.DataFrame, cluster: str | None, keys: Any) -> pd.Series[Any] | None:
    """Each id's cluster (its first example's), when the runs were clustered."""
    if cluster is None or cluster not in frame.columns:
        return None
    return frame[cluster].groupby(keys, sort=False).first()


def _id_key(value: Any) -> Any:
    """An id as both runs can match it: 7, 7.0, "7" and "7.0" (a float id written as text) are one id;
    None, NaN and "" are none."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text[: text.index(".")] if _WHOLE_FLOAT.fullmatch(text) else text


def paired_rows(a: Session, b: Session, id_field: str = "id", metrics: Sequence[str] | None = None) -> Pairing:
    """B − A per metric both runs have (or the ``metrics`` given), over the examples both scored
    (``tracked compare --paired``): the pairing, with one ``stats.Paired`` per metric in ``rows``."""
    from ..stats import paired

    pairing = pair(a, b, id_field)
    first, second = pairing.first, pairing.second
    common = [
        m
        for m in first.columns
        if m in second.columns
        and m not in pairing.details
        and first[m].dtype.kind == "f"
        and second[m].dtype.kind == "f"
    ]
    if metrics:  # empty or None: every metric both runs have
        unknown = [m for m in metrics if m not in common]
        if unknown:
            raise SessionError(f"cannot pair on {', '.join(map(repr, unknown))}: not a metric of both runs")
        common = list(metrics)
    if not common:
        raise SessionError(f"cannot pair {a.path} with {b.path}: the runs have no metric in common")
    pairing.rows = [paired(str(m), first[m].to_numpy(), second[m].to_numpy(), pairing.clusters) for m in common]
    return pairing
