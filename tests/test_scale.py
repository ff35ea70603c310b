"""Large runs: a bounded chart that keeps its shape, and every example kept as an artifact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracked import read_session, tracked_eval


@tracked_eval(max_points=10, verbose=False)
def many(values: list[float]) -> Iterator[dict[str, float]]:
    for v in values:
        yield {"acc": v, "loss": 1.0 - v}


def test_below_max_points_every_example_is_its_own_point() -> None:
    """Up to max_points examples, the chart has one point per example at its index."""
    values = [0.1 * i for i in range(10)]
    chart = read_session(many(values).session_dir).scalars["Training Progress"]
    assert chart["acc"] == list(enumerate(values))


def test_above_max_points_each_point_is_a_range_mean_at_the_range_end() -> None:
    """1,000 examples, max_points=10: 10 points, each the mean of 100 examples, at indices 99, 199, ..."""
    rng = np.random.default_rng(0)
    values = rng.random(1000).tolist()
    result = many(values)
    chart = read_session(result.session_dir).scalars["Training Progress"]
    for name, column in (("acc", np.array(values)), ("loss", 1.0 - np.array(values))):
        points = chart[name]
        assert [i for i, _ in points] == list(range(99, 1000, 100))
        assert [v for _, v in points] == pytest.approx(column.reshape(10, 100).mean(axis=1).tolist())
        running = chart[f"{name} (running mean)"]
        assert [i for i, _ in running] == list(range(99, 1000, 100))
        expected = [column[: i + 1].mean() for i in range(99, 1000, 100)]
        assert [v for _, v in running] == pytest.approx(expected)
    assert result["acc"] == pytest.approx(float(np.mean(values)))


def test_uneven_ranges_and_nan_inside_a_range() -> None:
    """Ranges split the examples contiguously (sizes differ by at most one); NaN is left out of a range's mean."""
    values = [float(i) for i in range(25)]
    values[3] = float("nan")
    with pytest.warns(UserWarning, match="NaN"):
        result = many(values)
    points = read_session(result.session_dir).scalars["Training Progress"]["acc"]
    assert len(points) == 10
    assert points[-1][0] == 24
    edges = np.linspace(0, 25, 11).astype(int)
    assert points[0][0] == edges[1] - 1
    first = [v for v in values[: edges[1]] if v == v]
    assert points[0][1] == pytest.approx(sum(first) / len(first))


def test_every_example_is_saved_as_an_artifact_pandas_reads_back() -> None:
    """The full per-example table (index, metrics, details) is the run's 'examples' artifact."""

    @tracked_eval(verbose=False)
    def evaluate(n: int) -> Iterator[dict[str, object]]:
        for i in range(n):
            yield {"acc": i % 2, "prediction": f"p{i}"}

    result = evaluate(7000)
    task = json.loads((Path(result.session_dir or "") / "task.json").read_text())
    (artifact,) = [a for a in task["execution"]["artifacts"] if a["key"] == "examples"]
    saved = pd.read_pickle(artifact["uri"])
    assert len(saved) == 7000
    pd.testing.assert_frame_equal(saved, result.examples)
    assert saved.loc[6999, "prediction"] == "p6999"
    assert saved.index.name == "index"


def test_values_across_storage_chunks_keep_their_order_and_indices() -> None:
    """Scores stored in fixed-size chunks come back whole and in order, gaps included."""
    from tracked._run import CHUNK

    n = 2 * CHUNK + 10
    gap = CHUNK + 5

    @tracked_eval(verbose=False, max_points=100)
    def evaluate() -> Iterator[dict[str, float]]:
        for i in range(n):
            yield {"a": float(i)} if i == gap else {"a": float(i), "b": float(i)}

    result = evaluate()
    assert result.examples["a"].tolist() == [float(i) for i in range(n)]
    assert np.isnan(result.examples["b"][gap])
    assert result.examples["b"][gap + 1] == gap + 1
    assert result["a"] == pytest.approx((n - 1) / 2)
    assert result["b"] == pytest.approx((sum(range(n)) - gap) / (n - 1))
    points = read_session(result.session_dir).scalars["Training Progress"]["b"]
    assert len(points) == 100
    assert points[-1][0] == n - 1
