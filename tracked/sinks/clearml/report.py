"""The final report of a run in ClearML: single values and tables, statistics, the examples artifact."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ...common.secrets import scrub, scrub_frame
from ...common.values import encodable

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from clearml import Logger, Task

    from ...common.options import Settings
    from ...common.result import EvalResult
    from ...recording.sink import RunView

#: Series name of the final-metrics table under its title in PLOTS.
TABLE_SERIES = "summary"
#: Title of the PLOTS table of per-metric statistics (mean, stderr, 95% CI, std, n, min, max).
STATS_TITLE = "Metric Statistics"


def final_title(settings: Settings) -> tuple[str, bool]:
    """The final-metrics table's title: ``table_title``, or ``<table_title> (final metrics)`` when that is
    the title of a table tracked reports beside it (its statistics, or ``Metrics by <group_by>``): one
    would replace the other, on the server and when the session is read back. And whether it was changed."""
    title = settings.table_title
    own = {STATS_TITLE, *([f"Metrics by {settings.group_by}"] if settings.group_by else [])}
    return (f"{title} (final metrics)", True) if title in own else (title, False)


def log_metrics(
    logger: Logger,
    metrics: Mapping[str, Any],
    title: str = "Final Metrics",
    series: str = TABLE_SERIES,
    iteration: int = 0,
) -> None:
    """Final metrics as single values (never scalars at iteration 0), and all of them in one table.

    For code that does not use the decorator:
    ``log_metrics(task.get_logger(), {"token_recall": 0.67})``.

    NaN and infinite numbers are not reported as single values (ClearML
    would write them as 0.0); the table shows them as text. The table is
    the plot of ``iteration``: one per step, the latest shown first.
    """
    import math

    import pandas as pd

    from ...common.values import finite_number

    rows = []
    for name, value in metrics.items():
        number = finite_number(value)
        if number is not None:
            logger.report_single_value(name=encodable(scrub(str(name))), value=number)
        cell: Any = value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else str(value)
        if isinstance(cell, float) and not math.isfinite(cell):
            cell = str(cell)
        rows.append({"Metric": encodable(scrub(str(name))), "Value": cell})
    table = pd.DataFrame(rows, columns=["Metric", "Value"])
    logger.report_table(title=title, series=series, iteration=iteration, table_plot=table)


def report_step(logger: Logger, title: str, metrics: Mapping[str, Any], step: int, named: Callable[[str], str]) -> None:
    """A run at ``step``: each final metric a point at that iteration of its series in the chart ``title``
    (quality per epoch), and a single value ``<metric> (step N)`` beside the latest's plain one.

    tracked's own measures (``num_examples``, ``duration_seconds`` ...) stay single values only.
    """
    from ...common.names import OWN_METRICS
    from ...common.values import finite_number

    for name, value in metrics.items():
        number = finite_number(value)
        if number is None:
            continue
        logger.report_single_value(name=named(f"{name} (step {step})"), value=number)
        if name not in OWN_METRICS:
            logger.report_scalar(title=title, series=named(name), value=number, iteration=step)


def _nan_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """NaN cells as the text ClearML would write for them, without its pandas FutureWarning."""
    out: pd.DataFrame = table.astype(object).where(table.notna(), "NaN")
    return out


def save_examples(task: Task, result: EvalResult, named: Callable[[str], str], name: str = "examples") -> None:
    """Every example's scores and details, as the artifact ``examples`` (a DataFrame ``artifact.get()`` returns).

    Parquet, zstd-compressed, when pyarrow is importable (a million examples: ~16 MB, written in ~0.3 s, read
    back with their dtypes); without it csv.gz, ClearML's own default (seconds per million rows, dtypes
    lost). Never a pickle, unless the organisation configured ClearML to (``sdk.development.artifacts.
    default_pandas_dataframe_extension_name``): a configured format is honoured as it is.
    """
    examples = scrub_frame(result.examples)
    task.upload_artifact(
        named(name),
        _zstd_parquet(examples),
        extension_name=examples_format(),
        wait_on_upload=True,
        preview=f"{len(examples):,} examples; columns: {', '.join(map(str, examples.columns))}",
    )
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # what writing the file took goes back to the system now, not at the process's end
        pyarrow.default_memory_pool().release_unused()


def examples_format() -> str | None:
    """The examples' ``extension_name``: None where the organisation configured a DataFrame format (ClearML
    then uses it), else ``.parquet`` with pyarrow, else ``.csv.gz``."""
    import importlib

    from clearml.config import config

    if config.get("development.artifacts.default_pandas_dataframe_extension_name", None):
        return None
    try:
        importlib.import_module("pyarrow")  # pandas writes parquet through it
    except ImportError:
        return ".csv.gz"
    return ".parquet"


def _zstd_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame, written as zstd parquet when ClearML writes it as parquet (ClearML's ``to_parquet`` call
    takes pandas' default, snappy: read back about four times slower, a little larger)."""
    zstd: pd.DataFrame = _zstd_frame_class()(frame)
    return zstd


@functools.cache
def _zstd_frame_class() -> type[pd.DataFrame]:
    import pandas as pd

    class ZstdFrame(pd.DataFrame):
        @property
        def _constructor(self) -> type[pd.DataFrame]:  # what pandas derives from it is a plain DataFrame
            return pd.DataFrame

        def to_parquet(self, path: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("compression", "zstd")
            return pd.DataFrame(self).to_parquet(path, **kwargs)

    return ZstdFrame


def report_statistics(
    logger: Logger, run: RunView, result: EvalResult, named: Callable[[str], str], series: str, iteration: int = 0
) -> None:
    """Beside the final metrics: the ``Metric Statistics`` table and a ``<metric>_stderr`` single value
    per yielded metric; with ``group_by``, a ``Metrics by <field>`` table and ``<metric>/<group>`` means."""
    stats, settings = result.stats, run.settings
    if stats.empty:
        return
    for metric, stderr in stats["stderr"].items():
        # A final metric the function returned under this name keeps it (``common.names``).
        if math.isfinite(stderr) and f"{metric}_stderr" not in result:
            logger.report_single_value(name=named(f"{metric}_stderr"), value=float(stderr))
    kinds: dict[str, str] = stats.attrs.get("interval", {})
    clustered = f", clustered by {settings.cluster_by}" if stats.attrs.get("clustered") else ""
    table = stats.reset_index().rename(columns={"metric": "Metric"})
    table["interval"] = [f"{kinds.get(str(m), 't')}{clustered}" for m in table["Metric"]]
    logger.report_table(
        title=STATS_TITLE, series=series, iteration=iteration, table_plot=scrub_frame(_nan_as_text(table))
    )
    groups = result.group_stats
    if groups.empty:
        return
    for group, metric, mean in zip(groups["group"], groups["metric"], groups["mean"], strict=True):
        if math.isfinite(mean) and f"{metric}/{group}" not in result:
            logger.report_single_value(name=named(f"{metric}/{group}"), value=float(mean))
    title = f"Metrics by {settings.group_by}"
    logger.report_table(title=title, series=series, iteration=iteration, table_plot=scrub_frame(_nan_as_text(groups)))


def save_long_details(task: Task, journal_dir: Path | None, named: Callable[[str], str]) -> None:
    """Details too long to keep in memory are previews in ``examples``; the full texts go beside it.

    With a server, the file is uploaded as it is (offline, the session's journal holds it already).
    """
    from ...store.journal import LONG_DETAILS

    long = None if journal_dir is None else journal_dir / LONG_DETAILS
    if long is not None and long.is_file() and long.stat().st_size:
        task.upload_artifact(named("long details"), artifact_object=long, wait_on_upload=True)
