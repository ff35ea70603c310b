"""Error bars for one run's metrics: standard errors and 95% intervals, overall and per group.

Follows Evan Miller, "Adding Error Bars to Evals" (arXiv 2411.00640), with the small-sample care his
formulas leave to the reader: t quantiles on n − 1 degrees of freedom (z under-covers at n = 10),
the CR1 cluster-robust standard error with t on G − 1 degrees of freedom (statsmodels' and inspect-ai's
default; CR0 with z covers 0.85 with five clusters), Wilson's interval for 0/1 metrics, and a bootstrap-t
on request for skewed metrics (latency, cost), which no t interval covers well at small n.

Computed at the end of every evaluation, so fully vectorised and without scipy (``student`` computes the
t quantiles); scipy is for comparisons only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .bootstrap import MIN_VALUES, studentized_mean, too_big_to_bootstrap
from .student import quantile

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Two-sided 95% normal quantile, from the standard library.
Z95: float = NormalDist().inv_cdf(0.975)

_NAN = math.nan
_METRIC_COLUMNS = ["mean", "stderr", "ci_low", "ci_high", "std", "n", "min", "max", "df"]
_GROUP_COLUMNS = ["group", "metric", "mean", "stderr", "ci_low", "ci_high", "n"]


@functools.lru_cache(maxsize=1024)
def t_quantile(df: float, q: float = 0.975) -> float:
    """Student's t quantile with ``df`` degrees of freedom (NaN below one)."""
    if not df >= 1:
        return _NAN
    return quantile(df, q)


def is_proportion(values: npt.ArrayLike) -> bool:
    """Whether every finite value is 0 or 1 (and there is one): a per-example success such as accuracy."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.all():  # else no copy: a paired comparison of ten million examples holds enough
        x = x[finite]
    return bool(x.size) and _all_01(x, float(x.min()), float(x.max()))


def _all_01(x: FloatArray, lo: float, hi: float) -> bool:
    """Whether finite, non-empty ``x`` (whose extremes are given) holds only 0s and 1s."""
    # The extremes rule out most continuous metrics without another pass over the values.
    return lo >= 0.0 and hi <= 1.0 and np.count_nonzero(x == 0.0) + np.count_nonzero(x == 1.0) == x.size


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p`` observed over ``n`` (possibly effective, non-integer) trials.

    Unlike mean ± z·SE it stays inside [0, 1] and keeps a non-zero width at 0/n and n/n, where the
    sample standard error is 0 and would claim certainty from 30 correct answers out of 30. It exists
    at n = 1 (1/1 gives [0.21, 1]), where a t interval does not.
    """
    if not n > 0 or math.isnan(p) or math.isnan(z):
        return _NAN, _NAN
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    # Both ends are exactly 0 / 1 in exact arithmetic at p = 0 / 1; rounding must not move them.
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def cluster_codes(clusters: npt.ArrayLike) -> IntArray:
    """Integer codes for arbitrary hashable labels; a missing label (None, NaN) is a cluster of its own."""
    import pandas as pd

    labels = np.asarray(clusters)
    # Small non-negative integer ids are codes already (empty codes add nothing): skips hashing a million labels.
    if labels.dtype.kind in "iu" and labels.size and labels.min() >= 0 and labels.max() < 2 * labels.size:
        return labels.astype(np.intp, copy=False)
    codes, uniques = pd.factorize(labels)
    codes = codes.astype(np.intp, copy=False)
    missing = codes < 0
    # Unknown membership is treated as independence, as without clustering.
    codes[missing] = len(uniques) + np.arange(np.count_nonzero(missing))
    return codes


def clustered_stderr(d: FloatArray, codes: IntArray) -> tuple[float, int]:
    """CR1 standard error of the mean of values whose deviations from their mean are ``d``, and the number
    of clusters G: sqrt(G / (G − 1)) × Miller's sqrt(Σ_c (Σ_{i∈c} d_i)²) / n. NaN with one cluster, which
    shows no between-cluster variation (its residuals sum to 0): no evidence of precision."""
    sums = np.bincount(codes, weights=d)
    clusters = int(np.count_nonzero(np.bincount(codes)))
    if clusters < 2:
        return _NAN, clusters
    return math.sqrt(clusters / (clusters - 1) * float(sums @ sums)) / d.size, clusters


def _describe(
    column: FloatArray, codes: IntArray | None, proportion: bool | None, bootstrap: bool = False
) -> tuple[dict[str, float], str]:
    """mean, stderr, ci_low, ci_high, std, n, min, max, df of the finite values of one column, and the interval
    used: "wilson" for 0/1 values (``proportion``; None: decide from these values), "bootstrap" when asked
    for and possible, else "t"."""
    finite = np.isfinite(column)
    x = column if finite.all() else column[finite]
    if codes is not None and x is not column:
        codes = codes[finite]
    n = x.size
    if n == 0:
        return dict.fromkeys(_METRIC_COLUMNS, _NAN) | {"n": 0}, "wilson" if proportion else "t"
    lo, hi = float(x.min()), float(x.max())
    if proportion is None:
        proportion = _all_01(x, lo, hi)
    # Far beyond any score, squared deviations (even sums) would overflow: work in units of a power of two,
    # which is exact, so results still equal plain numpy's. The mean of a million 1e308s is then 1e308.
    exponent = math.frexp(max(hi, -lo))[1]
    scale = math.ldexp(1.0, min(exponent, 1023)) if exponent > 400 else 1.0
    y = x if scale == 1.0 else x * (1.0 / scale)
    mean_y = float(y.mean())
    d = y - mean_y
    # Equal values have no spread, whatever rounding the mean left in their deviations.
    spread = 0.0 if lo == hi else math.sqrt(float(d @ d) / (n - 1)) * scale if n > 1 else _NAN
    std = _NAN if n == 1 else spread
    stderr, df = std / math.sqrt(n), float(n - 1)
    if codes is not None:
        stderr, clusters = clustered_stderr(d, codes)
        stderr, df = stderr * scale, float(clusters - 1)
        if lo != hi and stderr <= 1e-12 * max(abs(lo), abs(hi)):
            # Every cluster's mean is the overall mean: no between-cluster variation, no evidence of precision.
            stderr = _NAN
    mean = mean_y * scale
    quantile = t_quantile(df)
    if proportion:
        kind, z = "wilson", Z95
        if codes is None or mean in (0.0, 1.0) or stderr == 0.0:
            n_eff = float(n)
        elif math.isnan(stderr):
            n_eff = 1.0  # a single cluster is worth at least one observation
        else:
            # Miller's design effect, as a sample size; the quantile of the G − 1 degrees of freedom it rests on.
            n_eff, z = min(float(n), mean * (1 - mean) / stderr**2), quantile
        low, high = wilson(mean, n_eff, z)
    elif bootstrap and codes is None and not too_big_to_bootstrap(n) and n >= MIN_VALUES:
        kind = "bootstrap"
        low, high = studentized_mean(x)
    else:
        kind = "t"
        low, high = mean - quantile * stderr, mean + quantile * stderr
    row = {"mean": mean, "stderr": stderr, "ci_low": low, "ci_high": high, "std": std, "n": n, "min": lo, "max": hi}
    return row | {"df": df}, kind


def metric_stats(
    columns: Mapping[str, npt.ArrayLike], clusters: npt.ArrayLike | None = None, bootstrap: Collection[str] = ()
) -> pd.DataFrame:
    """One row per metric: mean, stderr, ci_low, ci_high, std, n, min, max, df over its finite values.

    ``clusters`` (one hashable label per example) makes ``stderr`` cluster-robust (CR1: Miller's formula times
    sqrt(G / (G − 1)) for G clusters; NaN with fewer than two) and ``df`` G − 1; otherwise ``df`` is n − 1.
    The 95% interval is Wilson's for metrics whose values are all 0 or 1 (with clusters, over the effective
    sample size p(1−p)/SE², capped at n, and the t quantile on G − 1 degrees of freedom), a bootstrap-t
    for the metrics named in ``bootstrap`` (without clusters, from ``bootstrap.MIN_VALUES`` to
    ``bootstrap.MAX_VALUES`` values), and
    mean ± t(df)·stderr otherwise. ``attrs["interval"]`` names the interval used per metric ("wilson",
    "bootstrap" or "t"); ``attrs["clustered"]`` says whether ``clusters`` was given.
    """
    import pandas as pd

    codes = None if clusters is None else cluster_codes(clusters)
    rows: dict[str, dict[str, float]] = {}
    kinds: dict[str, str] = {}
    for name, column in columns.items():
        column = np.asarray(column, dtype=np.float64)
        if codes is not None and column.shape != codes.shape:
            raise ValueError(f"metric {name!r} has {column.size} values but clusters has {codes.size}")
        rows[name], kinds[name] = _describe(column, codes, None, bootstrap=name in bootstrap)
    frame: pd.DataFrame = pd.DataFrame.from_dict(rows, orient="index", columns=_METRIC_COLUMNS)
    frame["n"] = frame["n"].astype("int64")
    frame.index.name = "metric"
    frame.attrs["interval"] = kinds
    frame.attrs["clustered"] = clusters is not None
    return frame


def _sorted_groups(labels: list[Any]) -> list[int]:
    """Positions of ``labels`` in sorted order; by string form when they do not compare (mixed types)."""
    try:
        return sorted(range(len(labels)), key=labels.__getitem__)
    except TypeError:
        return sorted(range(len(labels)), key=lambda i: str(labels[i]))


def group_stats(
    columns: Mapping[str, npt.ArrayLike], groups: npt.ArrayLike, clusters: npt.ArrayLike | None = None
) -> pd.DataFrame:
    """Long table of group, metric, mean, stderr, ci_low, ci_high, n: ``metric_stats`` within each group.

    Groups are sorted; examples without a group (None, NaN) form a last group shown as "(none)". Whether a
    metric gets the Wilson interval is decided over the whole column, not per group, so that a continuous
    metric does not switch interval in a group that happens to hold only 0s and 1s.
    """
    import pandas as pd

    group_codes, uniques = pd.factorize(np.asarray(groups))
    n_examples = group_codes.size
    codes = None if clusters is None else cluster_codes(clusters)
    if codes is not None and codes.size != n_examples:
        raise ValueError(f"groups has {n_examples} values but clusters has {codes.size}")
    arrays = {name: np.asarray(column, dtype=np.float64) for name, column in columns.items()}
    for name, column in arrays.items():
        if column.shape != group_codes.shape:
            raise ValueError(f"metric {name!r} has {column.size} values but groups has {n_examples}")
    kinds = {name: "wilson" if is_proportion(column) else "t" for name, column in arrays.items()}
    # One stable sort splits the examples by group, instead of one full pass per group.
    group_codes = np.where(group_codes < 0, len(uniques), group_codes)
    order = np.argsort(group_codes, kind="stable")
    counts = np.bincount(group_codes, minlength=len(uniques) + 1)
    ends = np.cumsum(counts)
    labels: list[Any] = uniques.tolist()
    rows: list[list[Any]] = []
    for g in [*_sorted_groups(labels), len(labels)]:
        if counts[g] == 0:
            continue  # no example lacks a group
        members = order[ends[g] - counts[g] : ends[g]]
        sub_codes = None if codes is None else codes[members]
        for name, column in arrays.items():
            row, _ = _describe(column[members], sub_codes, kinds[name] == "wilson")
            rows.append([labels[g] if g < len(labels) else "(none)", name, *(row[c] for c in _GROUP_COLUMNS[2:])])
    frame: pd.DataFrame = pd.DataFrame(rows, columns=_GROUP_COLUMNS)
    frame["n"] = frame["n"].astype("int64")
    frame.attrs["interval"] = kinds
    frame.attrs["clustered"] = clusters is not None
    return frame
