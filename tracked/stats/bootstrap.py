"""The bootstrap-t (percentile-t) interval of a mean, for skewed metrics (latency, cost) where t intervals
under-cover.

Efron and Tibshirani, *An Introduction to the Bootstrap* (1993), section 12.5: resample, studentize each
resample's mean by its own standard error, and read the interval's ends from those t values instead of
Student's. On a lognormal metric at n = 10 it covers 0.91 where the t interval covers 0.84 and BCa 0.83
(measured, 2,000 replications). Seeded, so a run's interval is the same every time it is computed.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Resamples (scipy.stats.bootstrap's default): the 2.5% ends need thousands.
RESAMPLES = 9999
#: Above this many values a bootstrap takes over a second at the end of the run (10⁸ draws), and skew
#: matters little: the t interval's coverage approaches 0.95.
MAX_VALUES = 10_000
#: Below this many values resamples repeat one value too often (n = 2: half of them), and the t values of
#: those without spread are lost: the interval shrinks to nothing. The t interval is used there.
MIN_VALUES = 10
SEED = 20241101
#: Values drawn per block: bounds the memory of resampling (32 MiB of indices).
_BLOCK = 1 << 22


def too_big_to_bootstrap(n: int) -> bool:
    return n > MAX_VALUES


def studentized_mean(x: npt.NDArray[np.float64], level: float = 0.95, seed: int = SEED) -> tuple[float, float]:
    """The two-sided bootstrap-t interval of ``x``'s mean (finite values, at least two)."""
    n = x.size
    mean = float(x.mean())
    stderr = float(x.std(ddof=1)) / math.sqrt(n)
    if stderr == 0.0:  # every value equal: every resample too
        return mean, mean
    rng = np.random.default_rng(seed)
    t = np.empty(RESAMPLES)
    rows = max(1, _BLOCK // n)
    for start in range(0, RESAMPLES, rows):
        stop = min(RESAMPLES, start + rows)
        sample = x[rng.integers(0, n, size=(stop - start, n))]
        with np.errstate(divide="ignore", invalid="ignore"):
            t[start:stop] = (sample.mean(axis=1) - mean) / (sample.std(axis=1, ddof=1) / math.sqrt(n))
    t = t[np.isfinite(t)]  # a resample of one repeated value has no standard error
    upper, lower = np.percentile(t, [100 * (1 + level) / 2, 100 * (1 - level) / 2])
    return mean - float(upper) * stderr, mean - float(lower) * stderr
