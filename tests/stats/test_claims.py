"""Issue-by-issue: each claim tracked prints is one a statistician would sign (real runs, the real command)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm

import tracked
from tracked import tracked_eval
from tracked.stats.bootstrap import RESAMPLES, SEED


def _run(name: str, rows: list[dict[str, Any]], **options: Any) -> tracked.EvalResult:
    @tracked_eval(task_name=name, **{"verbose": False, **options})
    def evaluate() -> Iterator[dict[str, Any]]:
        yield from rows

    return evaluate()


def _folder(result: tracked.EvalResult) -> Path:
    assert result.session_dir is not None
    return result.session_dir


def _tracked(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracked.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _paired_json(a: Path, b: Path, *extra: str) -> dict[str, Any]:
    done = _tracked("compare", str(a), str(b), "--paired", "--format", "json", *extra)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_examples_without_an_id_are_left_out_not_paired_with_each_other() -> None:
    """Defect 2: the first id-less example of A was paired with the first of B (n = 4, diff 2.25)."""
    a = _run("A", [{"id": "q1", "s": 1.0}, {"id": "q2", "s": 2.0}, {"id": "q3", "s": 3.0}, {"s": 0.0}, {"s": 5.0}])
    b = _run("B", [{"s": 9.0}, {"id": "q1", "s": 1.0}, {"id": "q2", "s": 2.0}, {"id": "q3", "s": 3.0}])
    data = _paired_json(_folder(a), _folder(b))
    (row,) = data["paired"]
    assert (row["n"], row["diff"]) == (3, 0)
    assert "A: 2 examples without 'id' left out" in data["notes"]
    assert "B: 1 example without 'id' left out" in data["notes"]
    table = _tracked("compare", str(_folder(a)), str(_folder(b)), "--paired").stdout
    assert "A: 2 examples without 'id' left out" in table


def test_repeated_ids_are_averaged_per_id_and_said() -> None:
    """Defect 3: A scored q0 three times (0, 1, 1) and only the 0 was used."""
    a = _run("A", [{"id": "q0", "acc": v} for v in (0.0, 1.0, 1.0)] + [{"id": f"q{i}", "acc": 1.0} for i in (1, 2, 3)])
    b = _run("B", [{"id": f"q{i}", "acc": v} for i, v in enumerate((1.0, 0.0, 1.0, 0.0))])
    data = _paired_json(_folder(a), _folder(b))
    (row,) = data["paired"]
    per_id_a = np.array([2 / 3, 1.0, 1.0, 1.0])
    d = np.array([1.0, 0.0, 1.0, 0.0]) - per_id_a
    assert row["n"] == 4
    assert row["diff"] == pytest.approx(d.mean())
    assert row["stderr"] == pytest.approx(scipy.stats.sem(d))
    assert row["test"] == "t"  # a per-id mean of 2/3 is no longer 0/1
    assert "A: 1 id value scored more than once (up to 3 samples per id): averaged per id" in data["notes"]


def test_paired_runs_recorded_with_clusters_use_the_clustered_error_of_the_differences() -> None:
    """Defect 4: --paired ignored cluster_by (SE 0.045 where the clustered one is 0.080)."""
    rng = np.random.default_rng(8)
    passages = np.repeat(np.arange(12), 6)
    shift = rng.normal(0, 1, 12)[passages]  # B's change varies by passage: differences correlate within one
    a = rng.normal(0, 1, 72)
    b = a + shift + rng.normal(0, 0.3, 72)
    rows = lambda x: [  # noqa: E731
        {"id": f"q{i}", "passage": f"p{p}", "score": float(v)} for i, (p, v) in enumerate(zip(passages, x, strict=True))
    ]
    first = _run("A", rows(a), cluster_by="passage")
    second = _run("B", rows(b), cluster_by="passage")
    data = _paired_json(_folder(first), _folder(second))
    (row,) = data["paired"]
    d = b - a
    fit = sm.OLS(d, np.ones(72)).fit(cov_type="cluster", cov_kwds={"groups": passages})
    assert row["stderr"] == pytest.approx(float(fit.bse[0]), rel=1e-10)
    assert row["stderr"] > scipy.stats.sem(d)
    assert row["test"] == "t, CR1 over 12 clusters"
    assert row["df"] == 11
    t = float(fit.bse[0]) * scipy.stats.t.ppf(0.975, 11)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - t, d.mean() + t))
    assert row["p_value"] == pytest.approx(2 * scipy.stats.t.sf(abs(d.mean()) / float(fit.bse[0]), 11))
    assert "standard errors clustered by 'passage', as the runs were recorded" in data["notes"]


def test_a_single_example_or_two_perfect_answers_are_never_best() -> None:
    """Defects 6 and 7: one right against one wrong, and 2/2 against 0/2, were starred."""
    for n in (1, 2):
        right = _run(f"right{n}", [{"correct": 1.0}] * n)
        wrong = _run(f"wrong{n}", [{"correct": 0.0}] * n)
        done = _tracked("compare", str(_folder(right)), str(_folder(wrong)), "--format", "json")
        data = json.loads(done.stdout)
        assert "correct" not in data["best"], n
        assert sorted(data["tied"]["correct"]) == [f"right{n}", f"wrong{n}"]
    # Ten of ten against none of ten is evidence (Fisher p = 1e-5).
    right, wrong = _run("right10", [{"correct": 1.0}] * 10), _run("wrong10", [{"correct": 0.0}] * 10)
    assert tracked.compare(right, wrong).attrs["best"]["correct"] == ["right10"]
    # A continuous metric with one example per run: no error bar, never best.
    high, low = _run("high", [{"score": 0.9}]), _run("low", [{"score": 0.1}])
    assert "score" not in tracked.compare(high, low).attrs["best"]


def test_t_intervals_and_which_interval_each_metric_got(capsys: pytest.CaptureFixture[str]) -> None:
    """Defects 8 and 9: z intervals under-covered at small n; a bootstrap is offered and named."""
    rng = np.random.default_rng(3)
    latency = rng.lognormal(0.0, 1.0, 20)
    rows = [{"latency_s": float(v), "correct": float(i % 2)} for i, v in enumerate(latency)]
    result = _run("boot", rows, bootstrap=["latency_s"], verbose=True)
    stats = result.stats
    assert stats.attrs["interval"] == {"latency_s": "bootstrap", "correct": "wilson"}
    got = stats.loc["latency_s"]
    # The bootstrap-t written out, one resample at a time, from the same seeded stream.
    rng = np.random.default_rng(SEED)
    se = scipy.stats.sem(latency)
    t = []
    for _ in range(RESAMPLES):
        sample = latency[rng.integers(0, 20, size=20)]
        t.append((sample.mean() - latency.mean()) / scipy.stats.sem(sample))
    upper, lower = np.percentile(t, [97.5, 2.5])
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((latency.mean() - upper * se, latency.mean() - lower * se))
    assert _run("boot", rows, bootstrap=["latency_s"]).stats.loc["latency_s", "ci_low"] == got["ci_low"]  # seeded
    out = capsys.readouterr().out
    assert "(bootstrap)" in out
    assert "(wilson)" in out
    session = tracked.read_session(_folder(result))
    table = session.tables["Metric Statistics"]
    assert [row[-1] for row in table.rows] == ["bootstrap", "wilson"]
    # Without the option: the t interval on n − 1 degrees of freedom.
    plain = _run("plain", rows).stats.loc["latency_s"]
    t = scipy.stats.t.interval(0.95, 19, loc=latency.mean(), scale=scipy.stats.sem(latency))
    assert (plain["ci_low"], plain["ci_high"]) == pytest.approx(t)


def test_the_python_compare_has_the_numbers_of_the_command() -> None:
    rng = np.random.default_rng(4)
    ids = [f"q{i}" for i in range(60)]
    a = _run("A", [{"id": q, "acc": float(rng.random() < 0.5), "f1": rng.random()} for q in ids])
    b = _run("B", [{"id": q, "acc": float(rng.random() < 0.7), "f1": rng.random()} for q in ids])
    wide = tracked.compare(a, str(_folder(b)))
    data = json.loads(_tracked("compare", str(_folder(a)), str(_folder(b)), "--format", "json").stdout)
    assert list(wide.index) == [run["run"] for run in data["runs"]]
    for run in data["runs"]:
        for key, value in run.items():
            if key != "run":
                assert wide.loc[run["run"], key] == (pytest.approx(value) if isinstance(value, float) else value)
    assert wide.attrs["best"] == data["best"]
    assert wide.attrs["tied"] == data["tied"]
    pairs = tracked.compare(a, b, paired=True, metrics=["f1"])
    data = _paired_json(_folder(a), _folder(b))
    (row,) = [r for r in data["paired"] if r["metric"] == "f1"]
    assert list(pairs["metric"]) == ["f1"]
    for key, value in row.items():
        got = pairs.iloc[0][key]
        assert got == (pytest.approx(value) if isinstance(value, float) else value), key
    with pytest.raises(tracked.SessionError, match="exactly two runs"):
        tracked.compare(a, b, a, paired=True)
    with pytest.raises(tracked.SessionError, match="not a metric of both runs"):
        tracked.compare(a, b, paired=True, metrics=["bleu"])


def _gate(a: Path, b: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _tracked("compare", str(a), str(b), "--paired", *args)


def test_the_ci_gate_fails_only_when_new_is_worse() -> None:
    rng = np.random.default_rng(9)
    ids = [f"q{i}" for i in range(200)]
    base = (rng.random(200) < 0.7).astype(float)
    worse = base.copy()
    worse[np.flatnonzero(base == 1)[:30]] = 0  # 30 right answers lost
    better = base.copy()
    better[np.flatnonzero(base == 0)[:30]] = 1
    same = base.copy()
    same[np.flatnonzero(base == 1)[:2]] = 0  # 2 lost, 2 gained: no evidence either way
    same[np.flatnonzero(base == 0)[:2]] = 1
    latency = rng.lognormal(0, 0.5, 200)

    def run(name: str, acc: np.ndarray, slow: float = 1.0) -> Path:
        rows = [{"id": q, "acc": a, "latency_s": s * slow} for q, a, s in zip(ids, acc, latency, strict=True)]
        return _folder(_run(name, rows))

    base_run = run("base", base)
    worse_run, better_run, same_run = run("worse", worse), run("better", better), run("same", same)
    failed = _gate(base_run, worse_run, "--fail-if-worse", "acc")
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout.startswith("FAIL  acc: B is worse than A (p = ")
    assert "exact McNemar, 30 got worse and 0 better" in failed.stdout
    for other in (better_run, same_run):
        done = _gate(base_run, other, "--fail-if-worse", "acc")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("ok  acc: no evidence that B is worse than A")
    # A margin: 15% fewer right answers is worse by more than 0.1, not by more than 0.2.
    assert _gate(base_run, worse_run, "--fail-if-worse", "acc", "--margin", "0.1").returncode == 1
    assert _gate(base_run, worse_run, "--fail-if-worse", "acc", "--margin", "0.2").returncode == 0
    # Lower is better for a latency: 20% slower everywhere is worse; repeatable per metric, one line each.
    slower = run("slower", base, slow=1.2)
    done = _gate(base_run, slower, "--fail-if-worse", "acc", "--fail-if-worse", "latency_s", "--margin", "0.01")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ok  acc: ")
    assert lines[1].startswith("FAIL  latency_s: B is worse than A by more than 0.01")
    assert _gate(slower, base_run, "--fail-if-worse", "latency_s").returncode == 0
    # Usage errors are 2, and say why.
    for args in (["--margin", "0.1"], ["--fail-if-worse", "acc", "--margin", "-1"]):
        done = _gate(base_run, worse_run, *args)
        assert done.returncode == 2
    unpaired = _tracked("compare", str(base_run), str(worse_run), "--fail-if-worse", "acc")
    assert unpaired.returncode == 2
    assert "add --paired" in unpaired.stderr
    unknown = _gate(base_run, worse_run, "--fail-if-worse", "bleu")
    assert unknown.returncode == 1  # a failure at run time, not a usage error
    assert "not a metric of both runs" in unknown.stderr


def test_p_values_that_underflow_are_said_as_a_bound() -> None:
    ids = [f"q{i}" for i in range(400)]
    a = _run("A", [{"id": q, "score": float(i % 7)} for i, q in enumerate(ids)])
    b = _run("B", [{"id": q, "score": float(i % 7) + 3.0 + 0.01 * (i % 3)} for i, q in enumerate(ids)])
    table = _tracked("compare", str(_folder(a)), str(_folder(b)), "--paired").stdout
    assert "< 1e-16" in table
    assert math.isfinite(_paired_json(_folder(a), _folder(b))["paired"][0]["p_value"])
