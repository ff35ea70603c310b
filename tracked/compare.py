"""Runs side by side: one row per run, the best value per metric, as ``compare`` and ``report`` show them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .session import Session, SessionError

if TYPE_CHECKING:
    import pandas as pd

#: Metrics where lower is better when marking the best run; others: higher is better.
_LOWER_IS_BETTER = (
    "loss",
    "error",
    "err",
    "wer",
    "cer",
    "perplexity",
    "duration",
    "latency",
    "time",
    "seconds",
    "size",
)
#: Counts describe a run; no run is "best" at them.
_NEUTRAL = ("num_examples", "dataset_num_eval", "skipped_values", "model_size_bytes")


def labels(sessions: Sequence[Session]) -> list[str]:
    """Run names, made unique with the task id where two runs share a name; a run that did not
    complete says so (``[interrupted]``, ``[running]``, ...): its numbers cover part of its examples."""
    names = [s.name or s.id for s in sessions]
    unique = [f"{n} ({s.id[-8:]})" if names.count(n) > 1 else n for n, s in zip(names, sessions, strict=True)]
    return [
        label if s.status in ("completed", "unknown") else f"{label} [{s.status}]"
        for label, s in zip(unique, sessions, strict=True)
    ]


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def compare_frame(sessions: Sequence[Session], sort: str | None = None) -> pd.DataFrame:
    """One row per run, one column per final metric (single values), in first-seen order."""
    import pandas as pd

    rows = [dict(s.single_values) for s in sessions]
    frame: pd.DataFrame = pd.DataFrame(rows, index=pd.Index(labels(sessions), name="run"))
    if sort is not None:
        if sort not in frame.columns:
            raise SessionError(f"--sort {sort}: no run has that metric (metrics: {', '.join(frame.columns)})")
        frame = frame.sort_values(sort, ascending=lower_is_better(sort), na_position="last", kind="stable")
    return frame


def lower_is_better(metric: str) -> bool:
    lowered = metric.lower()
    return any(word in lowered for word in _LOWER_IS_BETTER)


def best_runs(frame: pd.DataFrame) -> dict[str, list[str]]:
    """metric -> the runs with the best value (ties all marked; none when all tie; counts are neutral)."""
    best: dict[str, list[str]] = {}
    for metric in frame.columns:
        column = frame[metric].dropna()
        if metric in _NEUTRAL or column.empty:
            continue
        target = column.min() if lower_is_better(metric) else column.max()
        winners = [
            str(run) for run, value in column.items() if math.isclose(value, target, rel_tol=1e-9, abs_tol=1e-12)
        ]
        if len(winners) < len(column):
            best[metric] = winners
    return best
