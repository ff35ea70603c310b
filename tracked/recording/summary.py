"""Numbers derived from a finished run: final metrics and the per-example table.

Imported when a run ends, not at ``import tracked``: it needs numpy, and
vectorised arithmetic over the compact per-metric arrays is what keeps the
end of a million-example run well under a second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..common.values import InvalidValue, as_number, encodable, typed_column
from ..common.warn import warn

if TYPE_CHECKING:
    import pandas as pd

    from .sink import RunView

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def final_metrics(run: RunView) -> dict[str, Any]:
    """The run's final metrics, in the order they are shown.

    Yielded metrics contribute their mean over finite values; the returned
    mapping is merged over them (a returned value wins); then the values
    tracked measures itself, unless the function returned its own.
    """
    metrics: dict[str, Any] = {}
    for name, series in run.series.items():
        values = series.freeze()
        finite = np.isfinite(values)
        nonfinite = int(values.size - np.count_nonzero(finite))
        if not nonfinite:
            metrics[name] = mean_of(values)  # no copy: the common case at a million examples
        else:
            metrics[name] = mean_of(values[finite]) if nonfinite < values.size else math.nan
            metrics[f"{name}_nonfinite_count"] = nonfinite
            warn(
                f"{run.name}: {nonfinite} of {values.size} values of {name!r} are NaN or infinite; "
                "they are left out of its mean and of the progress chart",
                stacklevel=2,
            )
    # A listed metric named like tracked's own values is there, under its new name (its warning said which).
    missing = [name for name in run.settings.metrics if name not in run.series and name not in run.renamed]
    if missing and run.count:
        warn(f"{run.name}: metrics={list(run.settings.metrics)!r} names {missing!r}, which no example had as a number")
    metrics.update(returned_metrics(run.returned, run.settings.default_metric, run.name))
    if run.call.yields or run.count:
        metrics.setdefault("num_examples", run.count)
    elif run.call.dataset_num_eval is not None:
        metrics.setdefault("num_examples", run.call.dataset_num_eval)
    metrics.setdefault("duration_seconds", run.duration)
    if run.call.model_size_bytes is not None:
        metrics.setdefault("model_size_bytes", run.call.model_size_bytes)
    if run.call.dataset_num_eval is not None:
        metrics.setdefault("dataset_num_eval", run.call.dataset_num_eval)
    for name, value in run.extra_metrics.items():
        metrics.setdefault(name, value)
    skipped = sum(count for count, _first in run.skipped.values())
    if skipped:
        metrics.setdefault("skipped_values", skipped)
    return metrics


def mean_of(values: FloatArray) -> float:
    """The mean of finite values, also where their sum leaves float64's range (1e308 each: the mean is 1e308)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(values.mean()) if values.size else math.nan
    if values.size and not math.isfinite(mean):
        scale = float(np.abs(values).max())
        mean = scale * float((values / scale).mean())
    return mean


def returned_metrics(value: Any, default_metric: str, name: str) -> dict[str, Any]:
    """The function's return value as a dict of final metrics.

    A mapping is taken as is; a dataclass or anything with ``to_dict``
    (a pandas Series) is converted; a bare number is the default metric.
    Anything else is kept on the result (``result.returned``) and noted.
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {str(k): v for k, v in dataclasses.asdict(value).items()}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            converted = to_dict()
        except Exception:  # noqa: BLE001 - a foreign to_dict may fail any way
            converted = None
        if isinstance(converted, Mapping):
            return {str(k): v for k, v in converted.items()}
    try:
        number = as_number(value)
    except InvalidValue:
        number = None
    if number is not None:
        return {default_metric: number}
    warn(
        f"{name} returned a {type(value).__name__}, not a mapping of final metrics; "
        "it is kept as result.returned and not reported",
        stacklevel=2,
    )
    return {}


def examples_frame(run: RunView) -> pd.DataFrame:
    """Every example's scores and details, one row per example (index = example index)."""
    import pandas as pd

    columns: dict[str, Any] = {}  # (names, as details, with a lone surrogate escaped: pandas cannot hold one)
    for metric, series in run.series.items():
        name = encodable(metric)
        values = series.freeze()
        if series.frozen_indices is None and series.start == 0 and len(values) == run.count:
            columns[name] = values  # the run's own array: no copy
        else:
            column = np.full(run.count, np.nan)
            column[series.frozen_index()] = values
            # A metric few examples have is stored sparse: memory follows the values yielded, not N per name.
            columns[name] = pd.arrays.SparseArray(column) if 4 * len(values) < run.count else column
    frame: pd.DataFrame = pd.DataFrame(columns, index=pd.RangeIndex(run.count, name="index"), copy=False)
    kinds = dict(run.details.kinds)
    details = frame.attrs["details"] = []  # which columns are details, however numeric (``tracked.merge``)
    for field, texts in run.details.columns(run.count).items():
        name = encodable(field)
        label = name if name not in frame.columns else f"{name} (detail)"
        details.append(label)
        try:
            frame[label] = typed_column(texts, kinds.get(field))
        except UnicodeEncodeError:  # a lone surrogate, which pandas' UTF-8 strings cannot hold: escaped
            frame[label] = [None if text is None else encodable(text) for text in texts.tolist()]
    return frame


def statistics(run: RunView) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Error bars for every yielded metric (``result.stats``), and per group with ``group_by``."""
    from ..stats import group_stats, metric_stats

    settings = run.settings
    clusters = _field(run, settings.cluster_by, "cluster_by") if settings.cluster_by else None
    groups = _field(run, settings.group_by, "group_by") if settings.group_by else None
    bootstrap = {encodable(name) for name in settings.bootstrap}
    if clusters is None and groups is None:  # each metric's own values, no copy
        columns = {encodable(name): series.freeze() for name, series in run.series.items()}
        return metric_stats(columns, bootstrap=bootstrap), None
    columns = {encodable(name): _dense(run, series) for name, series in run.series.items()}
    stats = metric_stats(columns, clusters, bootstrap=bootstrap)
    if clusters is not None:
        stats.attrs["cluster_by"] = settings.cluster_by
    return stats, None if groups is None else group_stats(columns, groups, clusters)


def _dense(run: RunView, series: Any) -> FloatArray:
    values: FloatArray = series.freeze()
    if series.frozen_indices is None and series.start == 0 and len(values) == run.count:
        return values
    column = np.full(run.count, np.nan)
    column[series.frozen_index()] = values
    return column


def _field(run: RunView, name: str, option: str) -> npt.NDArray[Any] | None:
    """Per example, the value of a detail or metric (None where an example has none)."""
    import pandas as pd

    labels = np.full(run.count, None, dtype=object)
    series = run.series.get(name)
    if series is not None:
        column = _dense(run, series)
        present = np.isfinite(column)
        labels[present] = column[present]
    found = series is not None
    texts = run.details.columns(run.count).get(name)
    if texts is not None:
        present = np.asarray(pd.notna(texts), dtype=bool)
        labels[present], found = texts[present], True
    if not found:
        warn(f"{run.name}: {option}={name!r}, but no example has that field; the statistics ignore it", stacklevel=2)
        return None
    return labels
