"""``tracked.compare``: runs compared in Python, with the numbers ``tracked compare --format json`` prints
(the command renders these very frames)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.errors import SessionError
from ..common.result import EvalResult
from .compare import best_runs, compare_frame
from .pairing import Pairing, paired_rows
from .session import Session, read_session

if TYPE_CHECKING:
    import pandas as pd


def compare_table(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: its status, then each final metric followed by its 95% interval's ends
    (``<metric>_ci_low``, ``<metric>_ci_high``) where the run recorded one. ``attrs``: ``best`` and ``tied``
    (metric -> runs), as ``best_runs`` decides them."""
    best, tied = best_runs(frame)
    intervals: dict[str, dict[str, tuple[float, float]]] = frame.attrs.get("ci", {})
    chosen = list(frame.columns) if not metrics else [m for m in frame.columns if m in set(metrics)]
    wide: pd.DataFrame = frame[chosen].copy()
    taken = {str(m) for m in chosen} | {"run"}  # "run" is each row's name in json

    def free(name: str) -> str:
        """A column name no metric has (a metric may be called ``status`` or ``acc_ci_low``)."""
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    for position, metric in reversed(list(enumerate(chosen))):
        for end, name in ((1, "ci_high"), (0, "ci_low")):
            values = [intervals.get(str(run), {}).get(str(metric), (math.nan, math.nan))[end] for run in wide.index]
            if any(v == v for v in values):
                wide.insert(position + 1, free(f"{metric}_{name}"), values)
    status = frame.attrs.get("status", {})
    wide.insert(0, free("status"), [status.get(str(run), "unknown") for run in wide.index])
    if "run" in chosen:
        wide = wide.rename(columns={"run": free("run (metric)")})
    wide.attrs = {
        "best": {m: runs for m, runs in best.items() if m in chosen},
        "tied": {m: runs for m, runs in tied.items() if m in chosen},
    }
    return wide


def paired_table(pairing: Pairing, a: str, b: str) -> pd.DataFrame:
    """One row per metric: B − A, its standard error, 95% interval, p-value, the test behind it, n, the flips
    of 0/1 metrics, the detectable difference (80% power) and why a number is missing. ``attrs``: ``a``,
    ``b`` (the runs' names) and ``notes`` (how the examples were matched)."""
    import pandas as pd

    table: pd.DataFrame = pd.DataFrame([asdict(row) for row in pairing.rows])
    table.attrs = {"a": a, "b": b, "notes": list(pairing.notes)}
    return table


def _session(run: Any) -> Session:
    if isinstance(run, EvalResult):
        folder = run.session_dir or run.saved_to
        if folder is None:
            raise SessionError(
                "this result has no local session to compare (tracking was off, or the run went to a ClearML "
                "server): compare offline runs, or run it with offline=True"
            )
        return read_session(folder)
    if isinstance(run, (str, Path)):
        return read_session(run)
    raise TypeError(f"tracked.compare takes EvalResults or session paths, got {type(run).__name__}")


def compare(
    *runs: EvalResult | str | Path, paired: bool = False, id_field: str = "id", metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Compare runs in Python: the numbers of ``tracked compare`` (``--paired``) ``--format json``.

    ``runs`` are results (``EvalResult``, of offline or locally saved runs) or session paths (folder or
    zip). Unpaired: one row per run (status, each final metric and its 95% interval); ``attrs["best"]``
    and ``attrs["tied"]`` name the runs marked best or tied per metric. ``paired=True`` (exactly two runs,
    B − A): one row per metric over the examples both scored, matched by ``id_field``; ``attrs["notes"]``
    says how. ``metrics`` keeps only those metrics. A run that cannot be read or paired raises
    ``tracked.SessionError`` saying why. ``metrics`` empty or None: all of them.
    """
    from .compare import labels

    if isinstance(metrics, str):  # one metric named, not its letters
        metrics = [metrics]
    sessions = [_session(run) for run in runs]
    if not sessions:
        raise SessionError("tracked.compare needs at least one run")
    if not paired:
        return compare_table(compare_frame(sessions), metrics)
    if len(sessions) != 2:
        raise SessionError(f"paired=True compares exactly two runs, {len(sessions)} given")
    first, second = labels(sessions)
    return paired_table(paired_rows(sessions[0], sessions[1], id_field, metrics), first, second)
