"""tracked.stats: every number against an independent computation (scipy, statsmodels, or the paper's formula)."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

from tracked.stats import Z95, Estimate, Paired, better, group_stats, is_proportion, metric_stats, paired

COLUMNS = ["mean", "stderr", "ci_low", "ci_high", "std", "n", "min", "max", "df"]
NAN = math.nan


def row(values: Any, clusters: Any = None) -> pd.Series:
    """metric_stats of one column named "m", as its row."""
    return metric_stats({"m": np.asarray(values, dtype=np.float64)}, clusters).loc["m"]


def cluster_se(values: Any, clusters: Any) -> float:
    """statsmodels' cluster-robust standard error of a mean (OLS on a constant) with its default small-sample
    correction, CR1: G/(G − 1) · (N − 1)/(N − K), which for a mean (K = 1) is G/(G − 1)."""
    y = np.asarray(values, dtype=np.float64)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(np.asarray(clusters))[0]})
    return float(fit.bse[0])


def t95(df: float) -> float:
    return float(stats.t.ppf(0.975, df))


def wilson_z(successes: float, trials: float, z: float) -> tuple[float, float]:
    """statsmodels' Wilson interval at the confidence level whose normal quantile is ``z``."""
    low, high = proportion_confint(successes, trials, alpha=2 * stats.norm.sf(z), method="wilson")
    return float(low), float(high)


def wilson_sm(successes: float, trials: float) -> tuple[float, float]:
    low, high = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    return float(low), float(high)


def test_z95_is_the_normal_quantile() -> None:
    assert pytest.approx(stats.norm.ppf(0.975), rel=1e-15) == Z95


def test_frame_shape_and_attrs() -> None:
    frame = metric_stats({"acc": np.array([1.0, 0.0, 1.0]), "loss": np.array([0.5, 0.25, 2.0])})
    assert list(frame.columns) == COLUMNS
    assert frame.index.name == "metric"
    assert list(frame.index) == ["acc", "loss"]
    assert frame["n"].dtype == np.int64
    assert frame.attrs == {"interval": {"acc": "wilson", "loss": "t"}, "clustered": False}
    assert list(frame["df"]) == [2, 2]
    assert metric_stats({"a": np.ones(2)}, clusters=np.array([1, 2])).attrs["clustered"] is True
    empty = metric_stats({})
    assert list(empty.columns) == COLUMNS
    assert len(empty) == 0


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.float64, st.integers(0, 60), elements=st.floats(-1e6, 1e6, allow_nan=False)),
    st.lists(st.sampled_from([NAN, math.inf, -math.inf]), max_size=5),
)
def test_random_columns_match_scipy(values: np.ndarray, junk: list[float]) -> None:
    """Finite values as scipy/numpy see them; NaN and ±inf appended anywhere are ignored."""
    column = np.concatenate([values, junk])
    np.random.default_rng(0).shuffle(column)
    got = row(column)
    n = values.size
    assert got["n"] == n
    if n == 0:
        assert got[["mean", "stderr", "ci_low", "ci_high", "std", "min", "max"]].isna().all()
        return
    assert got["mean"] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-9)
    assert got["min"] == values.min()
    assert got["max"] == values.max()
    if n == 1:
        assert math.isnan(got["std"])
        assert math.isnan(got["stderr"])
    else:
        assert got["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-9, abs=1e-9)
        assert got["stderr"] == pytest.approx(stats.sem(values), rel=1e-9, abs=1e-9)
    if is_proportion(values):
        expected = wilson_sm(int(np.count_nonzero(values)), n)
    elif n == 1:
        expected = (NAN, NAN)
    else:
        sem = stats.sem(values)
        expected = stats.t.interval(0.95, n - 1, loc=np.mean(values), scale=sem) if sem > 0 else (values[0],) * 2
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(expected, rel=1e-9, abs=1e-9, nan_ok=True)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=80))
def test_random_proportions_get_wilson(values: list[float]) -> None:
    got = row(values)
    low, high = wilson_sm(sum(values), len(values))
    assert got["ci_low"] == pytest.approx(low, abs=1e-12)
    assert got["ci_high"] == pytest.approx(high, abs=1e-12)
    assert 0.0 <= got["ci_low"] < got["ci_high"] <= 1.0


def test_is_proportion() -> None:
    assert is_proportion(np.array([0.0, 1.0, 1.0]))
    assert is_proportion(np.array([1.0, NAN, math.inf]))  # only finite values count
    assert is_proportion([True, False])
    assert not is_proportion(np.array([0.0, 0.5]))
    assert not is_proportion(np.array([0.0, 2.0]))
    assert not is_proportion(np.array([NAN]))
    assert not is_proportion(np.array([]))


def test_n_one() -> None:
    got = row([3.5])
    assert (got["mean"], got["n"], got["min"], got["max"]) == (3.5, 1, 3.5, 3.5)
    assert got[["std", "stderr", "ci_low", "ci_high"]].isna().all()
    # A single 0/1 outcome still has a Wilson interval.
    one = row([1.0])
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(wilson_sm(1, 1))
    assert one["ci_high"] == 1.0


def test_n_two() -> None:
    got = row([1.0, 3.0])
    assert got["mean"] == 2.0
    assert got["std"] == pytest.approx(math.sqrt(2))
    assert got["stderr"] == pytest.approx(1.0)  # sqrt(2)/sqrt(2)
    # Student's t on one degree of freedom (12.7), not 1.96: z covers far less than 95% at n = 2.
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(stats.t.interval(0.95, 1, loc=2.0, scale=1.0))


def test_all_values_equal() -> None:
    got = row([0.7] * 10)
    assert (got["mean"], got["std"], got["stderr"]) == (pytest.approx(0.7), 0.0, 0.0)
    assert got["ci_low"] == got["ci_high"] == got["mean"]


@pytest.mark.parametrize(("values", "successes"), [([0.0] * 30, 0), ([1.0] * 30, 30), ([1.0] * 29 + [0.0], 29)])
def test_proportions_use_wilson(values: list[float], successes: int) -> None:
    got = row(values)
    assert got["mean"] == successes / 30
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(wilson_sm(successes, 30), abs=1e-12)
    assert got["ci_high"] > got["ci_low"]  # non-zero width even where stderr is 0


def test_thirty_out_of_thirty() -> None:
    got = row([1.0] * 30)
    assert got["stderr"] == 0.0
    assert got["ci_high"] == 1.0
    assert got["ci_low"] < 1.0
    assert got["ci_low"] == pytest.approx(30 / (30 + Z95**2))  # Wilson at p = 1: n / (n + z²)
    zero = row([0.0] * 30)
    assert zero["ci_low"] == 0.0
    assert zero["ci_high"] == pytest.approx(Z95**2 / (30 + Z95**2))


def test_metric_missing_in_some_examples() -> None:
    frame = metric_stats({"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([NAN, 2.0, NAN, 4.0])})
    assert list(frame["n"]) == [4, 2]
    assert frame.loc["b", "mean"] == 3.0
    assert frame.loc["b", "stderr"] == pytest.approx(stats.sem([2.0, 4.0]))


def test_nan_and_inf_are_excluded() -> None:
    got = row([1.0, NAN, math.inf, 2.0, -math.inf, 6.0])
    assert (got["n"], got["mean"], got["min"], got["max"]) == (3, 3.0, 1.0, 6.0)
    assert got["std"] == pytest.approx(np.std([1.0, 2.0, 6.0], ddof=1))


def test_no_finite_value() -> None:
    for values in ([], [NAN, math.inf]):
        got = row(values)
        assert got["n"] == 0
        assert got[[c for c in COLUMNS if c != "n"]].isna().all()


def test_huge_values_do_not_overflow() -> None:
    got = row([1e308] * 1000)
    assert got["mean"] == 1e308
    assert (got["std"], got["stderr"]) == (0.0, 0.0)
    assert got["ci_low"] == got["ci_high"] == 1e308
    values = [1.7e308, 1.5e308, -1e308, 1.7e308]
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    var = sum((v - mean) ** 2 for v in exact) / (len(exact) - 1)
    got = row(values)
    assert got["mean"] == float(mean)
    assert got["std"] == pytest.approx(math.sqrt(float(var / Fraction(10) ** 616)) * 1e308, rel=1e-14)
    assert math.isfinite(got["stderr"])
    assert row([5e-324, 1e-320])["mean"] == pytest.approx(float((Fraction(5e-324) + Fraction(1e-320)) / 2))


def test_clustered_matches_statsmodels() -> None:
    rng = np.random.default_rng(7)
    clusters = rng.integers(0, 12, 200)
    effect = rng.normal(size=12)[clusters]  # examples share their cluster's effect: correlated within clusters
    values = effect + rng.normal(size=200)
    got = row(values, clusters)
    assert got["stderr"] == pytest.approx(cluster_se(values, clusters), rel=1e-10)
    assert got["stderr"] > stats.sem(values)  # positive intra-cluster correlation widens the error bar
    assert got["df"] == 11
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(
        (values.mean() - t95(11) * got["stderr"], values.mean() + t95(11) * got["stderr"])
    )
    # Miller's formula written out, times CR1's sqrt(G / (G − 1)).
    resid = values - values.mean()
    sums = pd.Series(resid).groupby(clusters).sum()
    assert got["stderr"] == pytest.approx(math.sqrt(12 / 11 * (sums**2).sum()) / 200, rel=1e-12)
    # Unclustered std is unchanged.
    assert got["std"] == pytest.approx(np.std(values, ddof=1))


def test_clustered_with_string_labels_and_missing_values() -> None:
    """Examples where the metric is NaN drop out of the clusters too; labels may be any hashable."""
    rng = np.random.default_rng(3)
    labels = np.array([f"doc{i}" for i in rng.integers(0, 9, 120)], dtype=object)
    values = rng.normal(size=120) + (labels == "doc1") * 3.0
    values[::7] = NAN
    keep = np.isfinite(values)
    got = row(values, labels)
    assert got["n"] == keep.sum()
    assert got["stderr"] == pytest.approx(cluster_se(values[keep], labels[keep]), rel=1e-10)


def test_large_integer_labels_use_the_hashing_path() -> None:
    values = np.arange(10.0)
    small = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    big = small * 10**12 - 7
    assert row(values, big)["stderr"] == pytest.approx(row(values, small)["stderr"])
    assert row(values, big)["stderr"] == pytest.approx(cluster_se(values, small))


def test_singleton_clusters_are_the_clt_error() -> None:
    values = np.random.default_rng(1).exponential(size=40)
    got = row(values, np.arange(40))
    assert got["stderr"] == pytest.approx(stats.sem(values), rel=1e-12)  # CR1's G/(G − 1) restores Bessel's n − 1
    # Missing labels are clusters of their own.
    labels = np.array([None] * 40, dtype=object)
    assert row(values, labels)["stderr"] == pytest.approx(got["stderr"], rel=1e-12)
    floats = np.full(40, NAN)
    assert row(values, floats)["stderr"] == pytest.approx(got["stderr"], rel=1e-12)


def test_one_cluster_has_no_clustered_error() -> None:
    got = row([1.0, 2.0, 4.0], clusters=np.array(["x", "x", "x"], dtype=object))
    assert math.isnan(got["stderr"])
    assert math.isnan(got["ci_low"])
    # A proportion in one cluster counts as a single observation.
    prop = row([1.0, 0.0, 1.0], clusters=np.array([5, 5, 5]))
    assert (prop["ci_low"], prop["ci_high"]) == pytest.approx(wilson_sm(2 / 3, 1))


def test_clustered_proportion_uses_the_effective_sample_size() -> None:
    rng = np.random.default_rng(11)
    clusters = rng.integers(0, 15, 300)
    values = (rng.random(300) < rng.uniform(0.2, 0.9, 15)[clusters]).astype(np.float64)
    got = row(values, clusters)
    se = cluster_se(values, clusters)
    p = values.mean()
    n_eff = p * (1 - p) / se**2
    assert 15 < n_eff < 300
    assert got["stderr"] == pytest.approx(se, rel=1e-10)
    # Wilson over the effective sample size, at the t quantile of the G − 1 = 14 degrees of freedom.
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(wilson_z(p * n_eff, n_eff, t95(14)), rel=1e-10)
    # Wider than the unclustered Wilson interval.
    assert got["ci_high"] - got["ci_low"] > np.diff(wilson_sm(values.sum(), 300))[0]
    # Singleton clusters: the CLT standard error, so n_eff = n − 1, and t on 299 degrees of freedom.
    single = row(values, np.arange(300))
    n_single = p * (1 - p) / stats.sem(values) ** 2
    assert n_single == pytest.approx(299)
    expected = wilson_z(p * n_single, n_single, t95(299))
    assert (single["ci_low"], single["ci_high"]) == pytest.approx(expected, rel=1e-10)
    # All correct: no variation to correct, the plain Wilson interval over n.
    ones = row(np.ones(300), clusters)
    assert (ones["ci_low"], ones["ci_high"]) == pytest.approx(wilson_sm(300, 300))


def test_cluster_length_must_match() -> None:
    with pytest.raises(ValueError, match="clusters"):
        metric_stats({"m": np.ones(3)}, clusters=np.array([1, 2]))


def test_group_stats_on_a_small_table() -> None:
    groups = np.array(["b", "a", "b", None, "a", "b"], dtype=object)
    acc = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    score = np.array([2.0, 4.0, NAN, 1.0, 6.0, 5.0])
    frame = group_stats({"acc": acc, "score": score}, groups)
    assert list(frame.columns) == ["group", "metric", "mean", "stderr", "ci_low", "ci_high", "n"]
    assert list(zip(frame["group"], frame["metric"], strict=True)) == [
        ("a", "acc"),
        ("a", "score"),
        ("b", "acc"),
        ("b", "score"),
        ("(none)", "acc"),
        ("(none)", "score"),
    ]
    assert list(frame["n"]) == [2, 2, 3, 2, 1, 1]
    assert frame["n"].dtype == np.int64
    assert list(frame["mean"]) == pytest.approx([0.5, 5.0, 2 / 3, 3.5, 1.0, 1.0])
    b_score = frame.iloc[3]
    assert b_score["stderr"] == pytest.approx(stats.sem([2.0, 5.0]))
    assert (b_score["ci_low"], b_score["ci_high"]) == pytest.approx((3.5 - t95(1) * 1.5, 3.5 + t95(1) * 1.5))
    b_acc = frame.iloc[2]
    assert (b_acc["ci_low"], b_acc["ci_high"]) == pytest.approx(wilson_sm(2, 3))
    assert frame.attrs == {"interval": {"acc": "wilson", "score": "t"}, "clustered": False}


def test_group_stats_interval_is_decided_per_metric() -> None:
    """A continuous metric keeps the t interval in a group that happens to hold only 0s and 1s."""
    frame = group_stats({"s": np.array([0.0, 1.0, 1.0, 0.5, 0.25])}, np.array([1, 1, 1, 2, 2]))
    first = frame.iloc[0]
    sem = stats.sem([0.0, 1.0, 1.0])
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((2 / 3 - t95(2) * sem, 2 / 3 + t95(2) * sem))


def test_group_stats_sorting() -> None:
    numbers = group_stats({"m": np.arange(4.0)}, np.array([10, 2, 10, 2]))
    assert list(numbers["group"]) == [2, 10]  # numerically, not as strings
    mixed = group_stats({"m": np.arange(5.0)}, np.array([2, "a", 10, "a", NAN], dtype=object))
    assert list(mixed["group"]) == [10, 2, "a", "(none)"]  # by string form
    assert list(mixed["n"]) == [1, 1, 2, 1]


def test_group_stats_with_clusters_equals_metric_stats_per_group() -> None:
    rng = np.random.default_rng(5)
    groups = rng.choice(["easy", "hard"], 400)
    clusters = rng.integers(0, 30, 400)
    columns = {"acc": (rng.random(400) < 0.6).astype(np.float64), "loss": rng.gamma(2.0, size=400)}
    frame = group_stats(columns, groups, clusters)
    assert frame.attrs["clustered"] is True
    for _, got in frame.iterrows():
        mask = groups == got["group"]
        expected = metric_stats({got["metric"]: columns[got["metric"]][mask]}, clusters[mask]).iloc[0]
        assert got["stderr"] == pytest.approx(cluster_se(columns[got["metric"]][mask], clusters[mask]), rel=1e-10)
        for column in ["mean", "stderr", "ci_low", "ci_high", "n"]:
            assert got[column] == pytest.approx(expected[column], rel=1e-12)


def test_group_stats_length_must_match() -> None:
    with pytest.raises(ValueError, match="groups"):
        group_stats({"m": np.ones(3)}, np.array([1, 2]))


def test_paired_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=50)
    b = a + 0.3 + rng.normal(scale=0.5, size=50)
    a[4], b[9] = NAN, math.inf  # pairs 4 and 9 are dropped
    keep = np.isfinite(a) & np.isfinite(b)
    got = paired("score", a, b)
    test = stats.ttest_rel(b[keep], a[keep])
    ci = test.confidence_interval(0.95)
    d = b[keep] - a[keep]
    assert got.metric == "score"
    assert got.n == 48
    assert got.diff == pytest.approx(d.mean())
    assert got.stderr == pytest.approx(stats.sem(d))
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high))
    assert got.p_value == pytest.approx(test.pvalue)
    assert got.p_value < 0.05
    assert (got.right_to_wrong, got.wrong_to_right) == (None, None)
    # The power of this t-test (statsmodels), not normal quantiles: 80% power at the detectable difference.
    effect = TTestPower().solve_power(nobs=48, alpha=0.05, power=0.8)
    assert got.mde == pytest.approx(effect * d.std(ddof=1), rel=1e-5)
    assert (got.test, got.note, got.df) == ("t", "", 47)


def test_paired_counts_flips_for_proportions() -> None:
    a = np.array([1, 1, 1, 0, 0, 0, 1, NAN], dtype=np.float64)
    b = np.array([1, 0, 0, 1, 0, 0, 1, 1], dtype=np.float64)
    got = paired("acc", a, b)
    assert (got.right_to_wrong, got.wrong_to_right, got.n) == (2, 1, 7)
    assert got.diff == pytest.approx(-1 / 7)
    # Exact McNemar: the discordant pairs, 2 against 1.
    assert got.test == "exact McNemar"
    assert got.p_value == pytest.approx(mcnemar([[2, 2], [1, 2]], exact=True).pvalue)
    assert got.p_value == pytest.approx(stats.binomtest(1, 3).pvalue)


def test_paired_all_differences_zero() -> None:
    a = np.array([1.0, 0.0, 1.0, 1.0])
    got = paired("acc", a, a.copy())
    # No discordant pair: the exact test's p is 1; no spread: no interval and nothing "detectable".
    assert got == Paired("acc", 0.0, 0.0, NAN, NAN, 1.0, 4, 0, 0, NAN, "exact McNemar", "identical on every example", 3)
    assert math.isnan(got.ci_low)
    assert math.isnan(got.mde)


def test_paired_constant_nonzero_difference_is_not_certainty() -> None:
    """Defect 1: equal differences used to give p = 0 and CI [d, d]."""
    got = paired("m", np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5]))
    assert (got.diff, got.stderr) == (0.5, 0.0)
    assert all(math.isnan(v) for v in (got.ci_low, got.ci_high, got.p_value, got.mde))
    assert got.note == "every difference is 0.5: no spread to test"
    # Two questions both flipped wrong→right: the exact sign test's p = 0.5, nothing more certain.
    flips = paired("acc", np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    assert flips.p_value == pytest.approx(stats.binomtest(2, 2).pvalue) == 0.5
    assert math.isnan(flips.mde)
    # A equal to B on five questions: no claim that any difference would be detected.
    same = paired("acc", np.array([1.0, 0, 1, 1, 0]), np.array([1.0, 0, 1, 1, 0]))
    assert math.isnan(same.mde)
    assert same.note == "identical on every example"


def test_paired_small_n() -> None:
    none = paired("m", np.array([NAN, 1.0]), np.array([2.0, NAN]))
    assert none.n == 0
    assert all(math.isnan(v) for v in (none.diff, none.stderr, none.ci_low, none.ci_high, none.p_value, none.mde))
    one = paired("m", np.array([1.0]), np.array([3.0]))
    assert (one.n, one.diff) == (1, 2.0)
    assert all(math.isnan(v) for v in (one.stderr, one.ci_low, one.ci_high, one.p_value, one.mde))
    with pytest.raises(ValueError, match="run A"):
        paired("m", np.ones(2), np.ones(3))


def est(mean: float, stderr: float, n: int = 100, proportion: bool = False, df: float | None = None) -> Estimate:
    return Estimate(mean, stderr, n, n - 1 if df is None else df, proportion)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (est(0.80, 0.01), est(0.70, 0.01), True),
        (est(0.70, 0.01), est(0.80, 0.01), False),
        (est(0.72, 0.01), est(0.70, 0.01), None),
        (est(0.80, NAN), est(0.70, 0.01), None),  # defect 6: an unknown standard error is no evidence
        (est(NAN, 0.01), est(0.70, 0.01), None),
        (est(0.8, 0.0), est(0.7, 0.0), None),  # no spread in either run: cannot be compared
        (est(0.7, 0.0), est(0.7, 0.0), None),
        (est(0.8, 0.1, n=1, df=0), est(0.7, 0.1), None),  # one example: no error bar
        (est(0.8, 0.1, df=0), est(0.7, 0.1), None),  # one cluster
        (est(1.0, 0.0, n=2, proportion=True), est(0.0, 0.0, n=2, proportion=True), None),  # defect 7: Fisher p = 1/3
        (est(1.0, 0.0, n=1, proportion=True), est(0.0, 0.0, n=1, proportion=True), None),
        (est(1.0, 0.0, n=10, proportion=True), est(0.0, 0.0, n=10, proportion=True), True),
    ],
)
def test_better(a: Estimate, b: Estimate, expected: bool | None) -> None:
    assert better(a, b) is expected


def test_better_is_welchs_t_test() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(0.5, 1.0, 12), rng.normal(0.0, 2.0, 30)
    welch = stats.ttest_ind(x, y, equal_var=False)
    a, b = est(x.mean(), stats.sem(x), n=12), est(y.mean(), stats.sem(y), n=30)
    from tracked.stats import independent_p

    p, test = independent_p(a, b)
    assert test == "Welch t"
    assert p == pytest.approx(welch.pvalue, rel=1e-10)
    # Two proportions without clusters: Fisher's exact test.
    p, test = independent_p(est(0.9, 0.0, n=20, proportion=True), est(0.5, 0.0, n=10, proportion=True))
    assert test == "Fisher exact"
    assert p == pytest.approx(stats.fisher_exact([[18, 2], [5, 5]]).pvalue, rel=1e-12)


def test_a_million_examples_need_no_python_loop_per_example() -> None:
    """Python lines executed do not grow with N: the work is in numpy (time it by hand, not here)."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    columns = {
        "acc": (rng.random(n) < 0.7).astype(np.float64),
        "score": np.where(rng.random(n) < 0.01, NAN, rng.normal(size=n)),
        "tokens": rng.exponential(100.0, size=n),
    }
    clusters = rng.integers(0, 50_000, n)
    lines = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal lines
        lines += event == "line"
        return trace

    metric_stats({"warm": np.ones(3)}, np.arange(3))  # imports done once per process are not per-example work
    sys.settrace(trace)
    try:
        plain = metric_stats(columns)
        clustered = metric_stats(columns, clusters)
    finally:
        sys.settrace(None)
    assert lines < 50_000
    assert list(plain["n"]) == [n, np.isfinite(columns["score"]).sum(), n]
    assert plain.loc["score", "mean"] == pytest.approx(np.nanmean(columns["score"]))
    assert plain.loc["tokens", "stderr"] == pytest.approx(stats.sem(columns["tokens"]))
    keep = np.isfinite(columns["score"])
    resid = columns["score"][keep] - columns["score"][keep].mean()
    sums = np.bincount(clusters[keep], weights=resid)
    groups = np.unique(clusters[keep]).size
    expected = math.sqrt(groups / (groups - 1) * (sums @ sums)) / keep.sum()
    assert clustered.loc["score", "stderr"] == pytest.approx(expected)


def test_t_quantiles_equal_scipys() -> None:
    from tracked.stats.student import quantile

    for df in [*range(1, 120), 250.0, 999.0, 1000.0, 1001.0, 1e4, 1e6, 1e9, 1.5, 2.5, 7.3]:
        for q in (0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.999, 0.025):
            assert quantile(df, q) == pytest.approx(stats.t.ppf(q, df), rel=1e-12, abs=1e-15), (df, q)


def test_per_run_statistics_do_not_import_scipy() -> None:
    """scipy takes 0.2 s (scipy.special) to over a second (scipy.stats) and 13 MB or more to import; only
    comparisons may pay for it."""
    code = (
        "import sys, numpy as np\n"
        "from tracked.stats import metric_stats, group_stats\n"
        "metric_stats({'a': np.array([0.0, 1.0, 1.0])}, clusters=np.array(['x', 'y', 'y'], dtype=object))\n"
        "metric_stats({'a': np.array([0.5, 1.0, 7.0])}, bootstrap={'a'})\n"
        "group_stats({'a': np.array([0.5, 2.0])}, np.array([1, 2]))\n"
        "assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if m.startswith('scipy'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
