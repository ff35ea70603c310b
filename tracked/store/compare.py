"""Runs side by side: one row per run, the best value per metric, as ``compare`` and ``report`` show them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..common.errors import SessionError
from .session import Session

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
    """4 significant digits; counts (whole numbers) as integers, never ``1.054e+04``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def compare_frame(sessions: Sequence[Session], sort: str | None = None) -> pd.DataFrame:
    """One row per run, one column per final metric (single values), in first-seen order.

    ``frame.attrs["ci"]`` holds each run's 95% interval per metric (run -> metric -> (low, high)) and
    ``frame.attrs["stderr"]`` its standard error, where the run recorded its statistics.
    """
    import pandas as pd

    rows = [{k: v for k, v in s.single_values.items() if not _is_stderr(k, s)} for s in sessions]
    frame: pd.DataFrame = pd.DataFrame(rows, index=pd.Index(labels(sessions), name="run"))
    frame.attrs["status"] = {label: s.status for label, s in zip(frame.index, sessions, strict=True)}
    frame.attrs["ci"] = {label: _intervals(s) for label, s in zip(frame.index, sessions, strict=True)}
    frame.attrs["stderr"] = {label: s.stderrs for label, s in zip(frame.index, sessions, strict=True)}
    if sort is not None:
        if sort not in frame.columns:
            raise SessionError(f"--sort {sort}: no run has that metric (metrics: {', '.join(frame.columns)})")
        frame = frame.sort_values(sort, ascending=lower_is_better(sort), na_position="last", kind="stable")
    return frame


def _is_stderr(name: str, session: Session) -> bool:
    """``acc_stderr`` is shown as acc's ± here, not as a metric of its own."""
    return name.endswith("_stderr") and name[: -len("_stderr")] in session.stderrs


def _intervals(session: Session) -> dict[str, tuple[float, float]]:
    return {
        metric: (row["ci_low"], row["ci_high"])
        for metric, row in session.statistics.items()
        if math.isfinite(row.get("ci_low", math.nan)) and math.isfinite(row.get("ci_high", math.nan))
    }


def lower_is_better(metric: str) -> bool:
    lowered = metric.lower()
    return any(word in lowered for word in _LOWER_IS_BETTER)


def best_runs(frame: pd.DataFrame) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per metric, the best run and the runs tied for best (counts are neutral).

    A run is best only when it beats the runner-up at the 95% level (``_stats.better``, from the
    runs' standard errors); otherwise the leaders it cannot be told from are tied. Metrics without
    standard errors (returned ones, durations) are compared as exact numbers. Runs that did not
    complete (failed, stopped, interrupted, running) are never best: their numbers cover part of
    their examples.
    """
    status: dict[str, str] = frame.attrs.get("status", {})
    errors: dict[str, dict[str, float]] = frame.attrs.get("stderr", {})
    best: dict[str, list[str]] = {}
    tied: dict[str, list[str]] = {}
    for metric in frame.columns:
        column = frame[metric].dropna()
        column = column[[status.get(str(run), "completed") in ("completed", "unknown") for run in column.index]]
        if metric in _NEUTRAL or len(column) < 2:
            continue
        sign = -1.0 if lower_is_better(str(metric)) else 1.0
        ranked = sorted(column.items(), key=lambda item: sign * float(item[1]), reverse=True)
        leader, top = str(ranked[0][0]), float(ranked[0][1])

        errors_of = errors.get(leader, {}).get(str(metric))
        level = [
            str(run)
            for run, value in ranked[1:]
            if not _beats(sign * top, errors_of, sign * float(value), errors.get(str(run), {}).get(str(metric)))
        ]
        if not level:
            best[str(metric)] = [leader]
        else:  # the leaders cannot be told apart (all runs, or all but the ones clearly worse)
            tied[str(metric)] = [leader, *level]
    return best, tied


def _beats(top: float, top_stderr: float | None, value: float, stderr: float | None) -> bool:
    """Whether ``top`` is better than ``value``: at the 95% level where both have standard errors,
    as exact numbers otherwise."""
    from ..stats import better

    if top_stderr is None or stderr is None:
        return not math.isclose(top, value, rel_tol=1e-9, abs_tol=1e-12)
    return better(top, top_stderr, value, stderr) is True


def paired_rows(a: Session, b: Session, id_field: str = "id") -> list[dict[str, Any]]:
    """B − A per metric both runs have, over the examples both scored (``tracked compare --paired``).

    Examples are matched by ``id_field`` when both runs recorded it, else by index when both runs
    have as many examples; otherwise SessionError says why they cannot be paired.
    """
    from ..stats import paired

    first, second = a.examples(), b.examples()
    details = {*first.attrs.get("details", ()), *second.attrs.get("details", ())}  # a float detail is no metric
    for session, frame in ((a, first), (b, second)):
        if frame.empty:
            raise SessionError(f"{session.path}: no per-example scores to pair (only runs with a journal have them)")
    if id_field in first.columns and id_field in second.columns:
        first = first.drop_duplicates(id_field).set_index(id_field)
        second = second.drop_duplicates(id_field).set_index(id_field)
        first, second = first.align(second, join="inner", axis=0)
    elif len(first) != len(second):
        raise SessionError(
            f"cannot pair {a.path} ({len(first)} examples) with {b.path} ({len(second)}): "
            f"neither has the same number of examples nor an id field {id_field!r} in both (--id-field)"
        )
    if first.empty:
        raise SessionError(f"cannot pair {a.path} with {b.path}: no {id_field!r} is in both runs")
    metrics = [
        m
        for m in first.columns
        if m in second.columns and m not in details and first[m].dtype.kind == "f" and second[m].dtype.kind == "f"
    ]
    if not metrics:
        raise SessionError(f"cannot pair {a.path} with {b.path}: the runs have no metric in common")
    return [vars(paired(str(m), first[m].to_numpy(), second[m].to_numpy())) for m in metrics]
