"""Runs side by side: one row per run, the best value per metric, and two runs paired by example, as
``tracked compare``, ``tracked report`` and ``tracked.compare`` show them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..common.errors import SessionError
from .session import Session

if TYPE_CHECKING:
    import pandas as pd

    from ..stats import Estimate

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
    "second",
    "ms",
    "size",
    "cost",
)
#: Counts describe a run; no run is "best" at them.
_NEUTRAL = ("num_examples", "dataset_num_eval", "skipped_values", "model_size_bytes", "num_shards", "num_ranks")
_CLUSTERED = re.compile(r", clustered by (.+)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def labels(sessions: Sequence[Session]) -> list[str]:
    """Run names, made unique with the task id where two runs share a name."""
    names = [s.name or s.id for s in sessions]
    return [f"{n} ({s.id[-8:]})" if names.count(n) > 1 else n for n, s in zip(names, sessions, strict=True)]


def with_status(label: str, status: str) -> str:
    """A run that did not complete says so (``[interrupted]``, ``[running]``, ...): its numbers cover part
    of its examples."""
    return label if status in ("completed", "unknown") else f"{label} [{status}]"


def format_cell(value: Any) -> str:
    """4 significant digits; counts (whole numbers) as integers, never ``1.054e+04``; a p-value below
    double precision's reach as ``< 1e-16``, not 0."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def format_p(value: float) -> str:
    if value != value:
        return ""
    return "< 1e-16" if value < 1e-16 else f"{value:.4g}"


def compare_frame(
    sessions: Sequence[Session], sort: str | None = None, lower: Mapping[str, bool] | None = None
) -> pd.DataFrame:
    """One row per run, one column per final metric (single values), in first-seen order.

    ``frame.attrs``: ``status`` (run -> its status), ``ci`` (run -> metric -> its 95% interval),
    ``stderr`` (run -> metric -> standard error) and ``estimates`` (run -> metric -> ``stats.Estimate``),
    where the run recorded its statistics, and ``lower`` (metric -> lower is better, as the user said;
    others by name: ``lower_is_better``).
    """
    import pandas as pd

    names = labels(sessions)
    rows = [{k: v for k, v in s.single_values.items() if not _is_stderr(k, s)} for s in sessions]
    frame: pd.DataFrame = pd.DataFrame(rows, index=pd.Index(names, name="run"))
    frame.attrs["status"] = {label: s.status for label, s in zip(names, sessions, strict=True)}
    frame.attrs["ci"] = {label: _intervals(s) for label, s in zip(names, sessions, strict=True)}
    frame.attrs["stderr"] = {label: s.stderrs for label, s in zip(names, sessions, strict=True)}
    frame.attrs["estimates"] = {label: estimates(s) for label, s in zip(names, sessions, strict=True)}
    frame.attrs["lower"] = dict(lower or {})
    if sort is not None:
        if sort not in frame.columns:
            raise SessionError(f"--sort {sort}: no run has that metric (metrics: {', '.join(frame.columns)})")
        frame = frame.sort_values(sort, ascending=lower_is_better(sort, lower), na_position="last", kind="stable")
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


def _intervals_used(session: Session) -> dict[str, str]:
    """metric -> the interval its statistics row names ("wilson, clustered by passage", "t", ...)."""
    table = session.tables.get("Metric Statistics")
    if table is None or "interval" not in table.header:
        return {}
    column = table.header.index("interval")
    return {str(row[0]): str(row[column]) for row in table.rows if len(row) > column}


def estimates(session: Session) -> dict[str, Estimate]:
    """metric -> mean, stderr, n, degrees of freedom and whether it is 0/1, from the run's statistics."""
    from ..stats import Estimate

    kinds = _intervals_used(session)
    found = {}
    for metric, row in session.statistics.items():
        n = row.get("n", math.nan)
        if not math.isfinite(n) or "mean" not in row:
            continue
        # Statistics written before degrees of freedom were recorded are unclustered: n − 1.
        df = row.get("df", n - 1)
        proportion = kinds.get(metric, "").startswith("wilson")
        found[metric] = Estimate(row["mean"], row.get("stderr", math.nan), int(n), df, proportion)
    return found


def cluster_field(session: Session) -> str | None:
    """The ``cluster_by`` field the run's statistics were clustered by, if any."""
    for interval in _intervals_used(session).values():
        match = _CLUSTERED.search(interval)
        if match:
            return match.group(1)
    return None


def lower_is_better(metric: str, said: Mapping[str, bool] | None = None) -> bool:
    """Whether a metric's name says lower is better: one of its words (``eval_loss``, ``latency_ms``,
    ``timeToFirstToken``, ``errors``) is a loss, error, time or size word; ``answer_accuracy`` is not (a
    word inside another word does not count). ``said``: what the user said of some metrics, first."""
    if said and metric in said:
        return said[metric]
    spaced = _CAMEL.sub(" ", metric)
    words = {word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word}
    return any(word in _LOWER_IS_BETTER or word.removesuffix("s") in _LOWER_IS_BETTER for word in words)


def best_runs(frame: pd.DataFrame) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per metric, the best run and the runs tied for best (counts are neutral).

    A run is best only when it beats the runner-up at the 95% level (``stats.better``: Fisher's exact test
    for two 0/1 metrics, Welch's t-test otherwise); a yielded metric whose error bar is missing (one example,
    one cluster, no spread in either run) is never best. Metrics without statistics (returned ones,
    durations) are compared as exact numbers. Runs that did not complete (failed, stopped, interrupted,
    running) are never best: their numbers cover part of their examples.
    """
    status: dict[str, str] = frame.attrs.get("status", {})
    found: dict[str, dict[str, Estimate]] = frame.attrs.get("estimates", {})
    best: dict[str, list[str]] = {}
    tied: dict[str, list[str]] = {}
    for metric in frame.columns:
        column = frame[metric].dropna()
        column = column[[status.get(str(run), "completed") in ("completed", "unknown") for run in column.index]]
        if metric in _NEUTRAL or len(column) < 2:
            continue
        sign = -1.0 if lower_is_better(str(metric), frame.attrs.get("lower")) else 1.0
        ranked = sorted(column.items(), key=lambda item: sign * float(item[1]), reverse=True)
        leader, top = str(ranked[0][0]), float(ranked[0][1])
        level = [
            str(run)
            for run, value in ranked[1:]
            if not _beats(
                sign,
                top,
                found.get(leader, {}).get(str(metric)),
                float(value),
                found.get(str(run), {}).get(str(metric)),
            )
        ]
        if not level:
            best[str(metric)] = [leader]
        else:  # the leaders cannot be told apart (all runs, or all but the ones clearly worse)
            tied[str(metric)] = [leader, *level]
    return best, tied


def _beats(sign: float, top: float, top_estimate: Estimate | None, value: float, estimate: Estimate | None) -> bool:
    """Whether ``top`` is better than ``value``: at the 95% level where both runs recorded statistics,
    as exact numbers where neither did; never where only one did (a part cannot be weighed)."""
    from ..stats import better

    if top_estimate is None and estimate is None:
        return not math.isclose(top, value, rel_tol=1e-9, abs_tol=1e-12)
    if top_estimate is None or estimate is None:
        return False
    verdict = better(top_estimate, estimate)
    return verdict is (sign > 0)
