"""What the web UI's PLOTS tab shows of a run's examples: the first ones, the lowest-scoring ones, and each
metric's distribution. Capped, so that a million-example run reports a few kilobytes: the full table is the
examples artifact."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...common.secrets import scrub_frame

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    from clearml import Logger

    from ...common.result import EvalResult

#: Rows of each examples table.
ROWS = 20
#: Characters of a text cell (a longer one is cut, with "…").
CELL_CHARS = 200
#: Columns of an examples table beyond which the rest are left out (the artifact has them all).
COLUMNS = 30
#: Bars of a metric's histogram; a metric with at most this many distinct values gets a bar per value.
BINS = 20
FIRST_TITLE = "Examples"
LOWEST_TITLE = "Lowest-scoring examples"
HISTOGRAM_TITLE = "Score distribution"


def report_examples(
    logger: Logger, result: EvalResult, named: Callable[[str], str], series: str, iteration: int
) -> None:
    """The first ``ROWS`` examples; the ``ROWS`` lowest by the first metric (series: that metric); a histogram
    of each metric's per-example values (series: the metric)."""
    import numpy as np

    examples = result.examples
    if examples.empty:
        return
    metrics = [str(m) for m in result.stats.index if m in examples.columns] if not result.stats.empty else []
    logger.report_table(title=FIRST_TITLE, series=series, iteration=iteration, table_plot=_shown(examples.head(ROWS)))
    if metrics:
        first = metrics[0]
        lowest = examples.iloc[_lowest(examples[first].to_numpy(dtype=float), ROWS)]
        logger.report_table(title=LOWEST_TITLE, series=named(first), iteration=iteration, table_plot=_shown(lowest))
    for metric in metrics:
        values = examples[metric].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        # Few distinct values (0/1, a 1-5 rating): a bar each. Told from the first values without sorting
        # them all, unless those are few too (a million sorted per metric was a tenth of a run's end).
        distinct = np.unique(values[: 4 * BINS])
        if len(distinct) <= BINS:
            distinct = np.unique(values)
        if len(distinct) <= BINS:
            counts = [int(np.count_nonzero(values == v)) for v in distinct]
            labels = [f"{v:g}" for v in distinct]
        else:
            histogram, edges = np.histogram(values, bins=BINS)
            counts = histogram.tolist()
            labels = [f"{(lo + hi) / 2:.4g}" for lo, hi in itertools.pairwise(edges)]
        logger.report_histogram(
            title=HISTOGRAM_TITLE, series=named(metric), values=counts, iteration=iteration, xlabels=labels,
            xaxis=named(metric), yaxis="examples",
        )  # fmt: skip


def _lowest(values: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    """The positions of the ``k`` lowest finite values, lowest first, ties in order of position (as
    ``nsmallest(keep="first")``), found in linear time: no sort of the whole column, no copy of the frame."""
    import numpy as np

    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) > k:
        threshold = np.partition(values[finite], k - 1)[k - 1]
        finite = finite[values[finite] <= threshold]
    order = np.argsort(values[finite], kind="stable")[:k]
    found: npt.NDArray[np.intp] = finite[order]
    return found


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as the UI shows them: the index a column, at most ``COLUMNS`` columns, texts cut, secrets
    redacted, NaN as text (ClearML would write a pandas FutureWarning for it)."""
    shown = frame.iloc[:, :COLUMNS].reset_index()

    def cut(value: object) -> object:
        if isinstance(value, str) and len(value) > CELL_CHARS:
            return value[: CELL_CHARS - 1] + "…"
        return value

    shown = shown.astype(object).map(cut)
    out: pd.DataFrame = scrub_frame(shown.where(shown.notna(), "NaN"))
    return out
