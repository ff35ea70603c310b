"""Error bars on a real run: result.stats, the ClearML elements beside the seed's, clusters, groups, console."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.proportion import proportion_confint

from tracked import read_session, tracked_eval


@tracked_eval(verbose=False, cluster_by="passage", group_by="subject")
def grouped(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from rows


def test_stats_match_an_independent_computation_and_leave_non_finite_values_out() -> None:
    rng = np.random.default_rng(7)
    loss = rng.normal(2.0, 0.5, 200)
    loss[[3, 50]] = [math.nan, math.inf]  # counted as today, left out of the statistics

    @tracked_eval(verbose=False)
    def evaluate(values: np.ndarray) -> Iterator[dict[str, float]]:
        for i, value in enumerate(values):
            yield {"loss": float(value), "acc": float(i % 3 == 0)}

    with pytest.warns(UserWarning, match="NaN or infinite"):
        result = evaluate(loss)
    finite = loss[np.isfinite(loss)]
    row = result.stats.loc["loss"]
    assert list(result.stats.columns) == ["mean", "stderr", "ci_low", "ci_high", "std", "n", "min", "max", "df"]
    assert row["n"] == 198
    assert result["loss_nonfinite_count"] == 2
    assert row["mean"] == pytest.approx(finite.mean())
    assert row["stderr"] == pytest.approx(scipy.stats.sem(finite))
    assert row["std"] == pytest.approx(finite.std(ddof=1))
    half = scipy.stats.t.ppf(0.975, 197) * scipy.stats.sem(finite)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((finite.mean() - half, finite.mean() + half))
    assert (row["min"], row["max"]) == (finite.min(), finite.max())
    acc = result.stats.loc["acc"]
    assert (acc["ci_low"], acc["ci_high"]) == pytest.approx(proportion_confint(67, 200, method="wilson"))


def test_thirty_of_thirty_correct_is_not_certainty() -> None:
    @tracked_eval(verbose=False)
    def evaluate(n: int) -> Iterator[dict[str, float]]:
        for _ in range(n):
            yield {"correct": 1.0}

    row = evaluate(30).stats.loc["correct"]
    assert row["ci_high"] == 1.0
    assert row["ci_low"] == pytest.approx(proportion_confint(30, 30, method="wilson")[0])
    assert row["ci_low"] < 0.9


def test_clusters_groups_and_what_clearml_receives(clearml_cache: Path) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    passages = np.repeat(np.arange(40), 5)  # five questions per passage: answers correlate within a passage
    skill = rng.normal(0, 1, 40)[passages]
    correct = (skill + rng.normal(0, 0.5, 200) > 0).astype(float)
    rows = [
        {"correct": c, "passage": f"p{p}", "subject": ["math", "law"][p % 2]}
        for c, p in zip(correct, passages, strict=True)
    ]
    result = grouped(rows)

    # CR1: statsmodels' default small-sample correction.
    fit = sm.OLS(correct, np.ones(200)).fit(cov_type="cluster", cov_kwds={"groups": passages})
    assert result.stats.loc["correct", "stderr"] == pytest.approx(float(fit.bse[0]))
    assert result.stats.attrs["clustered"] is True
    assert result.stats.loc["correct", "stderr"] > scipy.stats.sem(correct)  # correlated answers: wider

    groups = result.group_stats
    assert list(groups.columns) == ["group", "metric", "mean", "stderr", "ci_low", "ci_high", "n"]
    law = groups[groups["group"] == "law"].iloc[0]
    assert law["mean"] == pytest.approx(correct[passages % 2 == 1].mean())
    assert law["n"] == 100

    session = read_session(result.session_dir)
    assert session.tables["Final Metrics"].header == ["Metric", "Value"]  # the seed's table as it was
    stats = session.tables["Metric Statistics"]
    assert stats.header == [
        "Metric", "mean", "stderr", "ci_low", "ci_high", "std", "n", "min", "max", "df", "interval"
    ]  # fmt: skip
    assert stats.rows[0][0] == "correct"
    assert stats.rows[0][-1] == "wilson, clustered by passage"
    assert session.single_values["correct_stderr"] == pytest.approx(float(fit.bse[0]))
    assert session.single_values["correct/law"] == pytest.approx(law["mean"])
    assert "Metrics by subject" in session.tables


def test_the_console_shows_each_mean_with_its_interval(capsys: pytest.CaptureFixture[str]) -> None:
    @tracked_eval
    def evaluate(values: list[float]) -> Iterator[float]:
        yield from values

    result = evaluate([1.0, 2.0, 3.0, 4.0])
    out = capsys.readouterr().out
    row = result.stats.loc["score"]
    assert f"score             2.5000 ± {(row['ci_high'] - row['ci_low']) / 2:.4f}  [" in out
    assert "n=4" in out


def test_a_cluster_field_no_example_has_is_one_warning() -> None:
    @tracked_eval(verbose=False, cluster_by="passage")
    def evaluate(values: list[float]) -> Iterator[float]:
        yield from values

    with pytest.warns(UserWarning, match="cluster_by='passage', but no example has that field"):
        result = evaluate([1.0, 2.0, 3.0])
    assert result.stats.loc["score", "stderr"] == pytest.approx(scipy.stats.sem([1.0, 2.0, 3.0]))


def _scored(name: str, correct: np.ndarray, ids: list[str] | None = None, fail: bool = False) -> Path:
    @tracked_eval(verbose=False, task_name=name)
    def evaluate(values: np.ndarray) -> Iterator[dict[str, Any]]:
        for i, value in enumerate(values):
            yield {"correct": float(value), **({"id": ids[i]} if ids else {})}
        if fail:
            raise RuntimeError("died late")

    if fail:
        with pytest.raises(RuntimeError):
            evaluate(correct)
        offline = Path(os.environ["CLEARML_CACHE_DIR"]) / "offline"
        (folder,) = [t.parent for t in offline.glob("*/task.json") if json.loads(t.read_text())["name"] == name]
        return folder
    folder = evaluate(correct).session_dir
    assert folder is not None
    return folder


def _tracked(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracked.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_compare_marks_best_only_when_significant_and_never_an_unfinished_run() -> None:
    rng = np.random.default_rng(11)
    weak = _scored("weak", (rng.random(400) < 0.5).astype(float))
    strong = _scored("strong", (rng.random(400) < 0.8).astype(float))
    same = _scored("same", (rng.random(400) < 0.8).astype(float))
    done = _tracked("compare", str(weak), str(strong), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["best"]["correct"] == ["strong"]
    data = json.loads(_tracked("compare", str(weak), str(strong), str(same), "--format", "json").stdout)
    assert sorted(data["tied"]["correct"]) == ["same", "strong"]
    failed = _scored("failed", np.ones(400), fail=True)  # higher, but it did not complete
    data = json.loads(_tracked("compare", str(weak), str(strong), str(failed), "--format", "json").stdout)
    assert data["best"]["correct"] == ["strong"]
    # The status is a field of its own (the name stays the name); the table says it beside the name.
    assert (data["runs"][2]["run"], data["runs"][2]["status"]) == ("failed", "failed")
    assert data["runs"][0]["status"] == "completed"
    table = _tracked("compare", str(weak), str(strong), str(failed)).stdout
    assert "failed [failed]" in table


def test_paired_comparison_matches_scipy_and_counts_flips() -> None:
    rng = np.random.default_rng(5)
    ids = [f"q{i}" for i in range(300)]
    a = (rng.random(300) < 0.6).astype(float)
    b = a.copy()
    flips = rng.choice(300, 40, replace=False)
    b[flips] = 1 - b[flips]
    first, second = _scored("A", a, ids), _scored("B", b[::-1], ids[::-1])  # B in another order: paired by id
    done = _tracked("compare", str(first), str(second), "--paired", "--format", "json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["paired"]
    discordant = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    d = b - a
    assert row["metric"] == "correct"
    assert row["n"] == 300
    assert row["diff"] == pytest.approx(d.mean())
    assert row["stderr"] == pytest.approx(scipy.stats.sem(d))
    # 0/1 scores: the exact McNemar test on the discordant pairs, and its interval: Clopper–Pearson for the
    # share of them that went up, as a difference over all 300.
    exact = scipy.stats.binomtest(discordant[1], sum(discordant))
    assert row["test"] == "exact McNemar"
    assert row["p_value"] == pytest.approx(exact.pvalue)
    share = exact.proportion_ci(0.95, method="exact")
    scale = sum(discordant) / 300
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((scale * (2 * share.low - 1), scale * (2 * share.high - 1)))
    assert row["right_to_wrong"] == int(((a == 1) & (b == 0)).sum())
    assert row["wrong_to_right"] == int(((a == 0) & (b == 1)).sum())
    from statsmodels.stats.power import TTestPower

    mde = TTestPower().solve_power(nobs=300, alpha=0.05, power=0.8) * d.std(ddof=1)
    assert row["mde"] == pytest.approx(mde, rel=1e-5)
    table = _tracked("compare", str(first), str(second), "--paired")
    assert "right→wrong" in table.stdout
    assert "detectable" in table.stdout


def test_runs_that_cannot_be_paired_are_one_line_and_exit_1() -> None:
    first, second = _scored("A", np.ones(10)), _scored("B", np.ones(12))
    done = _tracked("compare", str(first), str(second), "--paired")
    assert done.returncode == 1
    assert "cannot pair" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_paired_runs_without_a_common_metric_or_id_are_refused() -> None:
    from tracked import batch

    def run(name: str, ids: Any, **metric: Any) -> Path:
        @tracked_eval(verbose=False, task_name=name)
        def evaluate() -> Iterator[Any]:
            yield batch(id=ids, **metric)

        folder = evaluate().session_dir
        assert folder is not None
        return folder

    a = run("A", [1, 2, 3, 4], acc=[1, 0, 1, 1])
    b = run("B", [1, 2, 3, 4], f1=[1, 0, 1, 1])
    c = run("C", ["x", "y", "z", "w"], acc=[1, 0, 1, 1])
    for other, why in ((b, "no metric in common"), (c, "no 'id' is in both runs")):
        done = _tracked("compare", str(a), str(other), "--paired")
        assert done.returncode == 1
        assert why in done.stderr
        assert "Traceback" not in done.stderr


def test_runs_that_all_tie_are_marked_tied() -> None:
    rng = np.random.default_rng(2)
    first = _scored("first", (rng.random(50) < 0.5).astype(float))
    second = _scored("second", (rng.random(50) < 0.5).astype(float))
    data = json.loads(_tracked("compare", str(first), str(second), "--format", "json").stdout)
    assert "correct" not in data["best"]
    assert sorted(data["tied"]["correct"]) == ["first", "second"]
