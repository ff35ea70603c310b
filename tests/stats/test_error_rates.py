"""Monte-Carlo checks that the 95% claims hold: interval coverage, the paired test's type-I error, and how
often "best" is starred between two identically distributed runs. Seeded, vectorised over replications
with the package's own functions, seconds in all. Tolerances come from the Monte-Carlo error: with R
replications a rate near 0.05 has a standard error of sqrt(0.05 · 0.95 / R) (0.0034 at R = 4,000), so the
bounds below sit about three of them from the nominal rate."""

from __future__ import annotations

import numpy as np
import pytest

from tracked.stats import metric_stats, paired
from tracked.stats.comparisons import fisher_p, welch_p

R = 4000


def _coverage(samples: np.ndarray, truth: float, clusters: np.ndarray | None = None) -> float:
    """Share of replications (columns) whose 95% interval holds the true mean."""
    frame = metric_stats({str(i): samples[:, i] for i in range(samples.shape[1])}, clusters)
    return float(np.mean((frame["ci_low"] <= truth) & (truth <= frame["ci_high"])))


@pytest.mark.parametrize("n", [10, 30, 100])
def test_intervals_of_symmetric_metrics_cover_95_percent(n: int) -> None:
    rng = np.random.default_rng(n)
    assert 0.93 <= _coverage(rng.normal(0.3, 1.0, (n, R)), 0.3) <= 0.97
    assert 0.93 <= _coverage(rng.uniform(0.0, 1.0, (n, R)), 0.5) <= 0.97
    # Symmetric but heavy-tailed (t with 5 degrees of freedom).
    assert 0.93 <= _coverage(rng.standard_t(5, (n, R)), 0.0) <= 0.97


@pytest.mark.parametrize(("clusters", "size"), [(10, 5), (20, 3), (40, 2)])
def test_clustered_intervals_cover_95_percent_with_ten_clusters_or_more(clusters: int, size: int) -> None:
    rng = np.random.default_rng(clusters)
    labels = np.repeat(np.arange(clusters), size)
    shared = rng.normal(0.0, 1.0, (clusters, R))[labels]  # examples of a cluster share its effect
    values = shared + rng.normal(0.0, 1.0, (clusters * size, R))
    assert 0.93 <= _coverage(values, 0.0, labels) <= 0.97


def test_the_bootstrap_t_covers_skewed_metrics_where_the_t_interval_does_not() -> None:
    """A lognormal metric at n = 10: t covers about 0.84; the bootstrap-t about 0.91 (400 replications:
    Monte-Carlo error 0.014, so the bounds are four of them apart from each rate)."""
    rng = np.random.default_rng(12)
    samples = rng.lognormal(0.0, 1.0, (10, 400))
    truth = float(np.exp(0.5))
    t = _coverage(samples, truth)
    names = {str(i) for i in range(400)}
    frame = metric_stats({str(i): samples[:, i] for i in range(400)}, bootstrap=names)
    assert set(frame.attrs["interval"].values()) == {"bootstrap"}
    boot = float(np.mean((frame["ci_low"] <= truth) & (truth <= frame["ci_high"])))
    assert t < 0.88
    assert boot > 0.88


def _type_one(a: np.ndarray, b: np.ndarray, clusters: np.ndarray | None = None) -> float:
    """Share of replications where ``paired`` finds a difference at 5% between runs with none."""
    p = np.array([paired("m", a[:, i], b[:, i], clusters).p_value for i in range(a.shape[1])])
    return float(np.mean(p < 0.05))


@pytest.mark.parametrize("n", [10, 50])
def test_the_paired_test_holds_its_five_percent(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    reps = R // 4  # paired() per replication, as the command calls it: a quarter of R keeps it to seconds
    base = rng.normal(0.0, 1.0, (n, reps))
    noisy = base + rng.normal(0.0, 1.0, (n, reps))  # the same questions, no true difference
    assert _type_one(base, noisy) <= 0.06
    correct = (rng.random((n, reps)) < 0.6).astype(float)
    flipped = np.where(rng.random((n, reps)) < 0.2, 1 - correct, correct)
    other = np.where(rng.random((n, reps)) < 0.2, 1 - correct, correct)
    assert _type_one(flipped, other) <= 0.06
    labels = np.repeat(np.arange(10), n // 10)
    shared = rng.normal(0.0, 1.0, (10, reps))[labels]
    assert _type_one(base, base + shared + rng.normal(0.0, 0.5, (n, reps)), labels) <= 0.06


def test_best_is_starred_at_most_six_percent_of_the_time_for_identical_runs() -> None:
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in range(1, 101):
        for p in (0.5, 0.9):  # two runs of 0/1 scores from one distribution: Fisher's exact test
            k_a, k_b = rng.binomial(n, p, R), rng.binomial(n, p, R)
            worst = max(worst, float(np.mean(fisher_p(k_a, n, k_b, n) < 0.05)))
        if n >= 2:  # continuous scores: Welch's t-test on each run's mean and standard error
            a, b = rng.normal(0.0, 1.0, (n, R)), rng.normal(0.0, 1.0, (n, R))
            se_a, se_b = a.std(axis=0, ddof=1) / np.sqrt(n), b.std(axis=0, ddof=1) / np.sqrt(n)
            rate = float(np.mean(welch_p(a.mean(axis=0), se_a, n - 1, b.mean(axis=0), se_b, n - 1) < 0.05))
            worst = max(worst, rate)
    assert worst <= 0.06
