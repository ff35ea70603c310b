"""Error bars for evaluation metrics: standard errors, confidence intervals, paired comparisons.

Follows Evan Miller, "Adding Error Bars to Evals" (arXiv 2411.00640): the CLT
standard error of a mean, its cluster-robust version for examples that share a
source (several questions about one passage), paired differences between two
runs over the same examples, and the minimum detectable effect of such a test.

Per-run statistics are computed at the end of every evaluation, so they are
fully vectorised and import nothing slow: scipy (over a second to import) is
imported only by ``paired``, which compares two runs on request, and pandas
only by the functions that return frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Two-sided 95% normal quantile, from the standard library so that per-run statistics need no scipy.
Z95: float = NormalDist().inv_cdf(0.975)

_NAN = math.nan
_METRIC_COLUMNS = ["mean", "stderr", "ci_low", "ci_high", "std", "n", "min", "max"]
_GROUP_COLUMNS = ["group", "metric", "mean", "stderr", "ci_low", "ci_high", "n"]


def is_proportion(values: npt.ArrayLike) -> bool:
    """Whether every finite value is 0 or 1 (and there is one): a per-example success such as accuracy."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return bool(x.size) and _all_01(x, float(x.min()), float(x.max()))


def _all_01(x: FloatArray, lo: float, hi: float) -> bool:
    """Whether finite, non-empty ``x`` (whose extremes are given) holds only 0s and 1s."""
    # The extremes rule out most continuous metrics without another pass over the values.
    return lo >= 0.0 and hi <= 1.0 and np.count_nonzero(x == 0.0) + np.count_nonzero(x == 1.0) == x.size


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p`` observed over ``n`` (possibly effective, non-integer) trials.

    Unlike mean ± z·SE it stays inside [0, 1] and keeps a non-zero width at 0/n and n/n, where the
    sample standard error is 0 and would claim certainty from 30 correct answers out of 30.
    """
    if not n > 0 or math.isnan(p):
        return _NAN, _NAN
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    # Both ends are exactly 0 / 1 in exact arithmetic at p = 0 / 1; rounding must not move them.
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def _cluster_codes(clusters: npt.ArrayLike) -> IntArray:
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


def _describe(column: FloatArray, codes: IntArray | None, proportion: bool | None) -> tuple[dict[str, float], bool]:
    """mean, stderr, ci_low, ci_high, std, n, min, max of the finite values of one column, and whether the
    Wilson interval was used (``proportion``; None: decide from these values)."""
    finite = np.isfinite(column)
    x = column if finite.all() else column[finite]
    if codes is not None and x is not column:
        codes = codes[finite]
    n = x.size
    if n == 0:
        return dict.fromkeys(_METRIC_COLUMNS, _NAN) | {"n": 0}, bool(proportion)
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
    std = math.sqrt(float(d @ d) / (n - 1)) * scale if n > 1 else _NAN
    stderr = std / math.sqrt(n)
    if codes is not None:
        # Miller's clustered standard error (CR0): sqrt(Σ_c (Σ_{i∈c} (x_i − x̄))²) / n.
        # With one example per cluster this is sqrt((n−1)/n) × the CLT standard error.
        sums = np.bincount(codes, weights=d)
        # One cluster shows no between-cluster variation: its residuals sum to 0, which is no evidence of precision.
        several = bool(np.any(codes != codes[0]))
        stderr = math.sqrt(float(sums @ sums)) / n * scale if several else _NAN
    mean = mean_y * scale
    if proportion:
        if codes is None or mean in (0.0, 1.0) or stderr == 0.0:
            n_eff = float(n)
        elif math.isnan(stderr):
            n_eff = 1.0  # a single cluster is worth at least one observation
        else:
            n_eff = min(float(n), mean * (1 - mean) / stderr**2)  # Miller's design effect, as a sample size
        low, high = wilson(mean, n_eff)
    else:
        low, high = mean - Z95 * stderr, mean + Z95 * stderr
    row = {"mean": mean, "stderr": stderr, "ci_low": low, "ci_high": high, "std": std, "n": n, "min": lo, "max": hi}
    return row, proportion


def metric_stats(columns: Mapping[str, npt.ArrayLike], clusters: npt.ArrayLike | None = None) -> pd.DataFrame:
    """One row per metric: mean, stderr, ci_low, ci_high, std, n, min, max over its finite values.

    ``clusters`` (one hashable label per example) makes ``stderr`` cluster-robust (Miller's formula, CR0:
    no small-sample correction; with every cluster of size one it equals sqrt((n−1)/n) × the CLT
    standard error, NaN with fewer than two clusters). The 95% interval is Wilson's for metrics whose
    values are all 0 or 1 (with clusters, over the effective sample size p(1−p)/SE², capped at n), and
    mean ± Z95·stderr otherwise. ``attrs["interval"]`` names the interval used per metric ("wilson" or
    "normal"); ``attrs["clustered"]`` says whether ``clusters`` was given.
    """
    import pandas as pd

    codes = None if clusters is None else _cluster_codes(clusters)
    rows: dict[str, dict[str, float]] = {}
    kinds: dict[str, str] = {}
    for name, column in columns.items():
        column = np.asarray(column, dtype=np.float64)
        if codes is not None and column.shape != codes.shape:
            raise ValueError(f"metric {name!r} has {column.size} values but clusters has {codes.size}")
        rows[name], proportion = _describe(column, codes, None)
        kinds[name] = "wilson" if proportion else "normal"
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
    codes = None if clusters is None else _cluster_codes(clusters)
    if codes is not None and codes.size != n_examples:
        raise ValueError(f"groups has {n_examples} values but clusters has {codes.size}")
    arrays = {name: np.asarray(column, dtype=np.float64) for name, column in columns.items()}
    for name, column in arrays.items():
        if column.shape != group_codes.shape:
            raise ValueError(f"metric {name!r} has {column.size} values but groups has {n_examples}")
    kinds = {name: "wilson" if is_proportion(column) else "normal" for name, column in arrays.items()}
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


@dataclass(frozen=True)
class Paired:
    """Run B minus run A over the examples both scored (finite in both); see ``paired``."""

    metric: str
    diff: float
    stderr: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    right_to_wrong: int | None
    wrong_to_right: int | None
    mde: float


def paired(metric: str, a: npt.ArrayLike, b: npt.ArrayLike) -> Paired:
    """Paired difference B − A (Miller's paired analysis): far tighter than comparing two independent means
    when the runs' per-example scores are correlated, as they are on a shared set of questions.

    CI and two-sided p-value are the paired t-test's. ``mde`` is the smallest true difference this many
    pairs would detect with 80% power at the two-sided 5% level, given the observed spread of
    differences (Miller's power analysis). For 0/1 metrics, ``right_to_wrong`` counts examples A got right and
    B got wrong, ``wrong_to_right`` the reverse. When every difference is the same, the test is exact:
    stderr 0, CI [diff, diff], p-value 1 if diff is 0 else 0 (scipy would return NaN).
    """
    from scipy import stats  # type: ignore[import-untyped, unused-ignore]

    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"metric {metric!r}: run A has {xa.size} values, run B {xb.size}")
    both = np.isfinite(xa) & np.isfinite(xb)
    xa, xb = xa[both], xb[both]
    d = xb - xa
    n = int(d.size)
    flips: tuple[int | None, int | None] = (None, None)
    if is_proportion(xa) and is_proportion(xb):
        flips = int(np.count_nonzero((xa == 1) & (xb == 0))), int(np.count_nonzero((xa == 0) & (xb == 1)))
    if n == 0:
        return Paired(metric, _NAN, _NAN, _NAN, _NAN, _NAN, 0, *flips, _NAN)
    diff = float(d.mean())
    if n == 1:
        return Paired(metric, diff, _NAN, _NAN, _NAN, _NAN, 1, *flips, _NAN)
    sd = float(d.std(ddof=1))
    stderr = sd / math.sqrt(n)
    mde = float(stats.norm.ppf(0.975) + stats.norm.ppf(0.80)) * stderr
    if sd == 0.0:
        return Paired(metric, diff, 0.0, diff, diff, 1.0 if diff == 0.0 else 0.0, n, *flips, mde)
    test = stats.ttest_rel(xb, xa)
    ci = test.confidence_interval(0.95)
    return Paired(metric, diff, stderr, float(ci.low), float(ci.high), float(test.pvalue), n, *flips, mde)


def better(mean_a: float, stderr_a: float, mean_b: float, stderr_b: float) -> bool | None:
    """Whether independent run A scores significantly higher (True) or lower (False) than B at the 95% level.

    None when the two are not distinguishable or a standard error is unknown. Two exact means
    (both standard errors 0) are decided by the means themselves.
    """
    values = (mean_a, stderr_a, mean_b, stderr_b)
    if any(math.isnan(v) for v in values):
        return None
    if stderr_a == 0.0 and stderr_b == 0.0:
        return None if mean_a == mean_b else mean_a > mean_b
    z = (mean_a - mean_b) / math.hypot(stderr_a, stderr_b)
    if z > Z95:
        return True
    if z < -Z95:
        return False
    return None
