"""Is run B better than run A? Two runs over the same examples (paired), and independent runs side by side.

Every test here holds its 5% error rate at small samples too, and a comparison that cannot be made
(fewer than two examples, no spread at all, one cluster) is said in words, never a number that looks
like an answer:

- paired differences: the t-test on n − 1 degrees of freedom, or with clusters the CR1 standard error
  of the differences on G − 1 (statsmodels' default); for 0/1 metrics without clusters the exact
  McNemar (sign) test on the discordant pairs, which stays exact with two of them;
- the smallest detectable difference: the noncentral t power of that same test (statsmodels'
  ``TTestPower``), not normal quantiles, which promise 80% power where the t-test has 56% at n = 5;
- independent runs ("best" in ``compare``): Fisher's exact test for two unclustered proportions (a z-test
  on a standard error of 0 at 0/n would star 2/2 against 0/2), Welch's t-test otherwise.

The p-value functions take arrays, so the error-rate simulations in the tests run these very functions
over thousands of replications at once. scipy is imported when a comparison is made.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .intervals import FloatArray, cluster_codes, clustered_stderr, is_proportion, t_quantile

ALPHA = 0.05
POWER = 0.80
_NAN = math.nan


@dataclass(frozen=True)
class Estimate:
    """One run's mean of one metric, as its statistics record it: enough to compare it with another run's."""

    mean: float
    stderr: float
    n: int
    df: float
    proportion: bool


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
    #: The test behind ``p_value``: "t", "t, CR1 over G clusters" or "exact McNemar".
    test: str = "t"
    #: Why a number is missing ("identical on every example", ...); "" when every number is there.
    note: str = ""
    #: Degrees of freedom of the t interval: n − 1, or G − 1 with clusters.
    df: float = _NAN


def t_two_sided_p(t: npt.ArrayLike, df: npt.ArrayLike) -> Any:
    """Two-sided p-value of a t statistic (arrays broadcast)."""
    from scipy.special import stdtr  # type: ignore[import-untyped, unused-ignore]

    return 2 * stdtr(df, -np.abs(t))


def sign_test_p(k: npt.ArrayLike, m: npt.ArrayLike) -> Any:
    """Exact two-sided McNemar (sign) test: ``k`` of ``m`` discordant pairs went one way, p = 1/2 each.
    1 with no discordant pair (arrays broadcast)."""
    from scipy.special import bdtr  # type: ignore[import-untyped, unused-ignore]

    k, m = np.asarray(k, dtype=np.int64), np.asarray(m, dtype=np.int64)
    return np.where(m > 0, np.minimum(1.0, 2 * bdtr(np.minimum(k, m - k), np.maximum(m, 1), 0.5)), 1.0)


def fisher_p(k_a: npt.ArrayLike, n_a: npt.ArrayLike, k_b: npt.ArrayLike, n_b: npt.ArrayLike) -> Any:
    """Fisher's exact two-sided p-value for k_a of n_a against k_b of n_b successes, as
    ``scipy.stats.fisher_exact`` computes it (arrays broadcast; tables up to a few thousand per side)."""
    from scipy.stats import hypergeom  # type: ignore[import-untyped, unused-ignore]

    given = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (k_a, n_a, k_b, n_b)))
    # Replications repeat tables: each distinct one is computed once.
    tables, back = np.unique(np.stack([v.ravel() for v in given], axis=1), axis=0, return_inverse=True)
    k_a, n_a, k_b, n_b = (tables[:, [i]] for i in range(4))
    total, successes = n_a + n_b, k_a + k_b
    support = np.arange(int(n_a.max(initial=0)) + 1)
    likelihood = hypergeom.pmf(support, total, successes, n_a)
    observed = hypergeom.pmf(k_a, total, successes, n_a)
    # Tables at most as likely as the one observed (scipy's relative tolerance for rounding).
    p = np.where(likelihood <= observed * (1 + 1e-7), likelihood, 0.0).sum(axis=1)
    return np.minimum(p, 1.0)[back.ravel()].reshape(given[0].shape)


def welch_p(a_mean: Any, a_se: Any, a_df: Any, b_mean: Any, b_se: Any, b_df: Any) -> Any:
    """Welch's two-sided t-test from two means, their standard errors and degrees of freedom
    (Welch–Satterthwaite); NaN where both standard errors are 0 or one is unknown."""
    va, vb = np.square(np.asarray(a_se, dtype=np.float64)), np.square(np.asarray(b_se, dtype=np.float64))
    total = va + vb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = total**2 / (va**2 / np.asarray(a_df, dtype=np.float64) + vb**2 / np.asarray(b_df, dtype=np.float64))
        t = (np.asarray(a_mean, dtype=np.float64) - np.asarray(b_mean, dtype=np.float64)) / np.sqrt(total)
        p = t_two_sided_p(t, df)
    return np.where(total > 0, p, _NAN)


def independent_p(a: Estimate, b: Estimate) -> tuple[float, str]:
    """Two-sided p-value that two independent runs' means differ, and the test used, or NaN and why not."""
    exact = a.proportion and b.proportion and a.df == a.n - 1 and b.df == b.n - 1  # no clusters
    if exact and a.n >= 1 and b.n >= 1:
        p = fisher_p(round(a.mean * a.n), a.n, round(b.mean * b.n), b.n)
        return float(p), "Fisher exact"
    if not (a.df >= 1 and b.df >= 1) or math.isnan(a.stderr) or math.isnan(b.stderr):
        return _NAN, "too few examples (or one cluster) for an error bar"
    if a.stderr == 0.0 and b.stderr == 0.0:
        return _NAN, "no spread in either run"
    return float(welch_p(a.mean, a.stderr, a.df, b.mean, b.stderr, b.df)), "Welch t"


def better(a: Estimate, b: Estimate) -> bool | None:
    """Whether run A scores significantly higher (True) or lower (False) than independent run B at the 95%
    level (two-sided); None when they cannot be told apart or cannot be compared."""
    p, _ = independent_p(a, b)
    if not p < ALPHA or a.mean == b.mean:
        return None
    return a.mean > b.mean


@functools.lru_cache(maxsize=256)
def noncentrality(df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The true difference, in standard errors, that a two-sided t-test on ``df`` degrees of freedom finds
    with ``power`` (statsmodels' ``TTestPower``: both tails of the noncentral t)."""
    if not df >= 1:
        return _NAN
    from scipy import optimize, stats  # type: ignore[import-untyped, unused-ignore]

    df = min(df, 1e7)  # beyond, the t is the normal to 1e-7 and nct slows down
    critical = t_quantile(df, 1 - alpha / 2)

    def shortfall(nc: float) -> float:
        found = float(stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc))
        # scipy's nct gives NaN far out in the tail, where the power is 1 to double precision.
        return (1.0 if math.isnan(found) else found) - power

    low, high = 0.0, critical + 1.0
    while shortfall(high) < 0:
        low, high = high, 2 * high
    return float(optimize.brentq(shortfall, low, high, xtol=1e-12))


def _scaled(*arrays: FloatArray) -> tuple[list[FloatArray], float]:
    """The arrays in units of a power of two when their values are so large that differences or squares
    would overflow (as ``intervals`` does), and that unit; exact, so results equal plain arithmetic's."""
    top = max((_largest(x) for x in arrays if x.size), default=0.0)
    exponent = math.frexp(top)[1]
    if exponent <= 400:
        return list(arrays), 1.0
    unit = math.ldexp(1.0, min(exponent, 1023))
    return [x / unit for x in arrays], unit


def _largest(x: FloatArray) -> float:
    """``abs(x).max()`` without an array of absolute values (finite, non-empty ``x``)."""
    return max(abs(float(x.max())), abs(float(x.min())))


def negligible(spread: float, scale: float) -> bool:
    """Whether a standard error is rounding, not spread: ``a + 0.1 - a`` differs from 0.1 by a few units
    in the last place, which a t-test would read as certainty (p = 1e-63)."""
    return spread <= 1e-12 * max(scale, 1e-300)


def _exact_interval(down: int, up: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The interval of B − A for 0/1 scores that matches the exact McNemar test: Clopper–Pearson for the
    share of the m discordant pairs that went up, times m/n (conditional on m, as the test is)."""
    from scipy.stats import beta  # type: ignore[import-untyped, unused-ignore]

    m = down + up
    tail = (1 - level) / 2
    low = float(beta.ppf(tail, up, down + 1)) if up else 0.0
    high = float(beta.ppf(1 - tail, up + 1, down)) if down else 1.0
    return m / n * (2 * low - 1), m / n * (2 * high - 1)


def paired(metric: str, a: npt.ArrayLike, b: npt.ArrayLike, clusters: npt.ArrayLike | None = None) -> Paired:
    """Paired difference B − A (Miller's paired analysis): far tighter than comparing two independent means
    when the runs' per-example scores are correlated, as they are on a shared set of questions.

    ``clusters`` (one label per pair) makes the standard error the CR1 clustered one of the differences,
    on G − 1 degrees of freedom. For 0/1 metrics without clusters the p-value is the exact McNemar test's
    and the interval the matching exact one (Clopper–Pearson on the discordant pairs); otherwise both are
    the t-test's. ``mde`` is the smallest true difference the t-test would detect with 80% power at the
    two-sided 5% level. For 0/1 metrics, ``right_to_wrong`` counts examples A got right and B got wrong,
    ``wrong_to_right`` the reverse. Where a number cannot be computed, ``note`` says why.
    """
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"metric {metric!r}: run A has {xa.size} values, run B {xb.size}")
    both = np.isfinite(xa) & np.isfinite(xb)
    if not both.all():  # else no copy: ten million pairs are 160 MB a copy
        xa, xb = xa[both], xb[both]
    codes = None if clusters is None else cluster_codes(np.asarray(clusters, dtype=object)[both])
    (ya, yb), unit = _scaled(xa, xb)
    d = yb - ya
    n = int(d.size)
    flips: tuple[int | None, int | None] = (None, None)
    if is_proportion(xa) and is_proportion(xb):
        flips = int(np.count_nonzero((xa == 1) & (xb == 0))), int(np.count_nonzero((xa == 0) & (xb == 1)))
    if n == 0:
        return Paired(metric, _NAN, _NAN, _NAN, _NAN, _NAN, 0, *flips, _NAN, "", "no example scored by both runs")
    diff = float(d.mean())
    differs, spread = bool(np.any(d)), _NAN
    if codes is None:
        if n > 1:  # d.std(ddof=1), computed as numpy does, in place: no second array of n differences
            np.subtract(d, diff, out=d)
            np.multiply(d, d, out=d)
            spread = math.sqrt(float(d.sum()) / (n - 1))
        stderr = spread / math.sqrt(n) if n > 1 else _NAN
        df, test = float(n - 1), "t"
    else:
        stderr, groups = clustered_stderr(d - diff, codes)
        df, test = float(groups - 1), f"t, CR1 over {groups} clusters"
    scale = max(_largest(ya), _largest(yb))
    if negligible(stderr, scale):
        stderr = 0.0
    note = ""
    if n < 2:
        note = "one example: no error bar"
    elif codes is not None and df < 1:
        note = "one cluster: no error bar"
    elif not differs:
        note = "identical on every example"
    elif stderr == 0.0 and codes is not None and np.ptp(d) > 1e-12 * scale:
        note = "the clusters' mean differences are all equal: no spread between clusters to test"
    elif stderr == 0.0:
        note = f"every difference is {diff * unit:.4g}: no spread to test"
    ci_low = ci_high = mde = p_value = _NAN
    if stderr > 0 and df >= 1:
        half = t_quantile(df) * stderr
        ci_low, ci_high = (diff - half) * unit, (diff + half) * unit
        mde = noncentrality(df) * stderr * unit
        p_value = float(t_two_sided_p(diff / stderr, df))
    right_to_wrong, wrong_to_right = flips
    if right_to_wrong is not None and wrong_to_right is not None and codes is None:
        test = "exact McNemar"
        p_value = float(sign_test_p(wrong_to_right, right_to_wrong + wrong_to_right))
        if right_to_wrong + wrong_to_right:
            ci_low, ci_high = _exact_interval(right_to_wrong, wrong_to_right, n)
    return Paired(metric, diff * unit, stderr * unit, ci_low, ci_high, p_value, n, *flips, mde, test, note, df)


def worse(row: Paired, lower_is_better: bool, margin: float = 0.0) -> tuple[bool, str]:
    """Whether B is worse than A by more than ``margin`` at the 95% level, one-sided; and why, in words.

    0/1 metrics without clusters: the exact one-sided McNemar test, and with a margin also the one-sided
    t-test against it (B fails only when both say worse: a margin never makes the gate stricter). Other
    metrics: the one-sided t-test against the margin. Differences all equal (no spread) are no
    statistical question: B fails when every example is worse by more than the margin. Fewer than two
    examples scored by both runs is a failure: nothing vouches for B.
    """
    from scipy.special import bdtrc, stdtr  # type: ignore[import-untyped, unused-ignore]

    sign = -1.0 if lower_is_better else 1.0  # worse: B − A below −margin (higher is better) or above it
    shift = sign * row.diff + margin  # < 0: B worse than the margin allows, in the observed direction
    beyond = f" by more than {margin:g}" if margin else ""
    if row.n < 2:
        return (
            True,
            f"{row.metric}: {row.n} example{'s' if row.n != 1 else ''} scored by both runs: nothing to vouch for B",
        )
    t_test = None
    if row.stderr > 0 and row.df >= 1:
        t_test = (
            float(stdtr(row.df, shift / row.stderr)),
            f"one-sided t, B − A = {row.diff:.4g} (stderr {row.stderr:.2g})",
        )
    if row.test == "exact McNemar":
        down, up = (row.right_to_wrong or 0, row.wrong_to_right or 0)
        if sign < 0:
            down, up = up, down
        exact = float(bdtrc(down - 1, down + up, 0.5)) if down + up and down else 1.0
        how = f"exact McNemar, {down} got worse and {up} better, n = {row.n}"
        p = exact if not margin or t_test is None else max(exact, t_test[0])
        if margin and t_test is not None:
            how += f"; {t_test[1]}"
    elif t_test is not None:
        p, how = t_test[0], f"{t_test[1]}, n = {row.n}"
    elif row.stderr == 0.0 and row.df >= 1 and not math.isnan(row.diff):
        if shift < 0:
            return True, f"{row.metric}: B is worse than A{beyond} on every example ({row.note})"
        return False, f"{row.metric}: B is not worse than A{beyond} on any example ({row.note})"
    else:
        return False, f"{row.metric}: cannot be tested ({row.note or 'no error bar'}); not failed"
    if p < ALPHA:
        return True, f"{row.metric}: B is worse than A{beyond} (p = {_p(p)}, {how})"
    return False, f"{row.metric}: no evidence that B is worse than A{beyond} (p = {_p(p)}, {how})"


def _p(p: float) -> str:
    return "< 1e-16" if p < 1e-16 else f"{p:.2g}"
