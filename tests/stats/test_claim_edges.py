"""The edges an adversarial statistician found in the comparisons: directions, rounding, no spread,
margins, names and ids that collide, and the CI gate on runs that did not complete."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import scipy.stats

import tracked
from tests.stats.test_claims import _folder, _run, _tracked
from tracked.stats import metric_stats, paired, worse
from tracked.store.compare import lower_is_better


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("answer_accuracy", False),  # "wer" inside "answer"
        ("sentiment_f1", False),  # "time" inside "sentiment"
        ("certainty", False),
        ("lower_bound_power", False),
        ("wer", True),
        ("eval_loss", True),
        ("latency_ms", True),
        ("timeToFirstToken", True),
        ("errors", True),
        ("duration_seconds", True),
        ("cost_usd", True),
    ],
)
def test_lower_is_better_reads_whole_words(name: str, lower: bool) -> None:
    assert lower_is_better(name) is lower
    assert lower_is_better(name, {name: not lower}) is (not lower)


def test_the_gate_and_the_star_point_the_right_way_and_can_be_told() -> None:
    a = _run("A", [{"id": f"q{i}", "answer_accuracy": 1.0, "tokens": 10.0 + i % 3} for i in range(30)])
    b = _run("B", [{"id": f"q{i}", "answer_accuracy": 0.0, "tokens": 20.0 + i % 3} for i in range(30)])
    done = _tracked("compare", str(_folder(a)), str(_folder(b)), "--paired", "--fail-if-worse", "answer_accuracy")
    assert done.returncode == 1, done.stdout
    assert tracked.compare(a, b).attrs["best"]["answer_accuracy"] == ["A"]
    # Fewer tokens are better here: the user says so.
    told = ("--fail-if-worse", "tokens", "--lower-is-better", "tokens")
    assert _tracked("compare", str(_folder(a)), str(_folder(b)), "--paired", *told).returncode == 1
    assert (
        _tracked("compare", str(_folder(a)), str(_folder(b)), "--paired", "--fail-if-worse", "tokens").returncode == 0
    )
    data = json.loads(_tracked("compare", str(_folder(a)), str(_folder(b)), "--format", "json", *told[2:]).stdout)
    assert data["best"]["tokens"] == ["A"]


def test_a_new_run_that_failed_or_scored_nothing_fails_the_gate() -> None:
    base = _run("base", [{"id": f"q{i}", "acc": 1.0} for i in range(50)])

    @tracked.tracked_eval(verbose=False, task_name="crashed")
    def crashed() -> Any:
        for i in range(6):
            yield {"id": f"q{i}", "acc": float(i % 2)}
        raise RuntimeError("died")

    with pytest.raises(RuntimeError):
        crashed()
    import os
    from pathlib import Path

    offline = Path(os.environ["CLEARML_CACHE_DIR"]) / "offline"
    (folder,) = [t.parent for t in offline.glob("*/task.json") if json.loads(t.read_text())["name"] == "crashed"]
    done = _tracked("compare", str(_folder(base)), str(folder), "--paired", "--fail-if-worse", "acc")
    assert done.returncode == 1
    assert "FAIL  B did not complete (failed)" in done.stdout
    nan = _run("nan", [{"id": f"q{i}", "acc": math.nan} for i in range(50)])
    done = _tracked("compare", str(_folder(base)), str(_folder(nan)), "--paired", "--fail-if-worse", "acc")
    assert done.returncode == 1
    assert "0 examples scored by both runs" in done.stdout


def test_differences_equal_up_to_rounding_are_no_spread() -> None:
    xa = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    got = paired("s", xa, xa + 0.1)
    assert got.stderr == 0.0
    assert math.isnan(got.p_value)
    assert math.isnan(got.ci_low)
    assert got.note.startswith("every difference is 0.1")
    # Deterministic, not statistical: every example worse by 0.5 fails; better by 0.5 does not.
    verdict, why = worse(paired("s", xa + 0.5, xa), lower_is_better=False)
    assert verdict
    assert "on every example" in why
    assert not worse(paired("s", xa, xa + 0.5), lower_is_better=False)[0]
    assert not worse(paired("s", xa + 0.5, xa), lower_is_better=False, margin=0.6)[0]
    # Clusters whose mean differences are all equal: no between-cluster spread to test.
    clustered = paired("c", np.zeros(6), np.array([0.2, 0.8, 0.3, 0.7, 0.1, 0.9]), clusters=list("aabbcc"))
    assert math.isnan(clustered.p_value)
    assert "no spread between clusters" in clustered.note
    one = metric_stats({"s": np.array([0.2, 0.8, 0.3, 0.7, 0.1, 0.9])}, clusters=np.array([1, 1, 2, 2, 3, 3]))
    assert math.isnan(one.loc["s", "stderr"])
    assert math.isnan(one.loc["s", "ci_low"])


def test_a_margin_never_makes_the_gate_stricter_for_0_1_metrics() -> None:
    a = np.ones(100)
    b = a.copy()
    b[:3] = 0  # 3 right→wrong, 0 wrong→right
    row = paired("acc", a, b)
    assert not worse(row, False)[0]  # exact McNemar, p = 0.125
    for margin in (0.001, 0.005, 0.01):
        assert not worse(row, False, margin)[0]
    lost = paired("acc", np.ones(30), np.zeros(30))  # every question lost
    assert worse(lost, False)[0]
    assert worse(lost, False, margin=0.01)[0]


def test_the_interval_of_a_0_1_difference_agrees_with_its_exact_test() -> None:
    got = paired("acc", np.zeros(10), np.r_[np.ones(5), np.zeros(5)])
    assert got.p_value == pytest.approx(scipy.stats.binomtest(5, 5).pvalue) == 0.0625
    assert got.ci_low < 0 < got.ci_high  # p > 0.05: the interval holds 0
    # Clopper–Pearson for the 5 of 5 discordant pairs that went up, times 5/10.
    low = scipy.stats.binomtest(5, 5).proportion_ci(0.95, method="exact").low
    assert got.ci_low == pytest.approx(0.5 * (2 * low - 1))
    assert got.ci_high == pytest.approx(0.5)


def test_the_bootstrap_needs_ten_values() -> None:
    frame = metric_stats({"lat": np.array([0.2, 3.5])}, bootstrap={"lat"})
    assert frame.attrs["interval"]["lat"] == "t"
    assert frame.loc["lat", "ci_high"] - frame.loc["lat", "ci_low"] > 10


def test_metric_names_that_collide_with_the_tables_columns() -> None:
    rows = [{"status": 1.0, "acc": float(i % 2), "acc_ci_low": 0.5, "run": 2.0} for i in range(6)]
    a, b = _run("A", rows), _run("B", rows)
    done = _tracked("compare", str(_folder(a)), str(_folder(b)), "--format", "json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert [r["run"] for r in runs] == ["A", "B"]
    assert runs[0]["status"] == 1
    assert runs[0]["status_"] == "completed"
    assert runs[0]["run (metric)"] == 2
    assert runs[0]["acc_ci_low"] == 0.5
    assert "acc_ci_low_" in runs[0]
    for fmt in ("table", "csv", "markdown"):
        assert _tracked("compare", str(_folder(a)), str(_folder(b)), "--format", fmt).returncode == 0


def test_ids_pair_across_int_float_and_text_and_infinite_samples_are_left_out() -> None:
    a = _run("A", [{"id": i, "s": float(i)} for i in range(4)] + [{"id": 2, "s": math.inf}])
    b = _run("B", [{"id": float(i), "s": float(i) + 1} for i in range(4)])
    pairs = tracked.compare(a, b, paired=True, metrics="s")
    assert list(pairs["metric"]) == ["s"]
    assert pairs.iloc[0]["n"] == 4
    assert pairs.iloc[0]["diff"] == 1.0


def test_pairing_by_position_is_said() -> None:
    a = _run("A", [{"id": f"q{i}", "s": float(i)} for i in range(6)])
    b = _run("B", [{"qid": f"q{i}", "s": float(i)} for i in range(6)])
    assert (
        "paired by position: 'id' is not a field of both runs (--id-field)"
        in tracked.compare(a, b, paired=True).attrs["notes"]
    )


def test_huge_values_do_not_overflow_a_paired_difference() -> None:
    got = paired("h", np.array([1e308, -1e308, 1e308]), np.array([-1e308, 1e308, 1e307]))
    assert math.isfinite(got.diff)
    assert got.diff == pytest.approx(-3e307)  # (−2e308 + 2e308 − 9e307) / 3, past float's range midway
    assert math.isfinite(got.stderr)


def test_a_result_without_a_session_says_why() -> None:
    @tracked.tracked_eval(enabled=False)
    def off() -> Any:
        yield 1.0

    with pytest.raises(tracked.SessionError, match="tracking was off"):
        tracked.compare(off(), off())
