"""Large runs: a bounded chart that keeps its shape, and every example kept as an artifact."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracked import read_session, tracked_eval


@tracked_eval(max_points=10, verbose=False)
def many(dataset: list[float]) -> Iterator[dict[str, float]]:
    """The dataset's length is known: the chart is planned for it."""
    for v in dataset:
        yield {"acc": v, "loss": 1.0 - v}


@tracked_eval(max_points=16, verbose=False)
def streamed(n: int) -> Iterator[float]:
    """No dataset, no length: the chart cannot know how long the run will be."""
    for i in range(n):
        yield float(i)


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
    assert artifact["type_data"]["content_type"] == "application/parquet"
    saved = pd.read_parquet(artifact["uri"])
    assert len(saved) == 7000
    pd.testing.assert_frame_equal(saved, result.examples)
    assert saved.loc[6999, "prediction"] == "p6999"
    assert saved.index.name == "index"


def test_values_across_storage_chunks_keep_their_order_and_indices() -> None:
    """Scores stored in fixed-size chunks come back whole and in order, gaps included."""
    from tracked.recording.storage import CHUNK

    n = 2 * CHUNK + 10
    gap = CHUNK + 5

    @tracked_eval(verbose=False, max_points=100)
    def evaluate(dataset: range) -> Iterator[dict[str, float]]:
        for i in dataset:
            yield {"a": float(i)} if i == gap else {"a": float(i), "b": float(i)}

    result = evaluate(range(n))
    assert result.examples["a"].tolist() == [float(i) for i in range(n)]
    assert np.isnan(result.examples["b"][gap])
    assert result.examples["b"][gap + 1] == gap + 1
    assert result["a"] == pytest.approx((n - 1) / 2)
    assert result["b"] == pytest.approx((sum(range(n)) - gap) / (n - 1))
    points = read_session(result.session_dir).scalars["Training Progress"]["b"]
    assert len(points) == 100
    assert points[-1][0] == n - 1


def test_unknown_length_ranges_double_and_stay_bounded() -> None:
    """Without a length: max_points/4 single points, then max_points/8 ranges of each width 2, 4, 8, ..."""
    n = 1000
    result = streamed(n)
    chart = read_session(result.session_dir).scalars["Training Progress"]
    points = chart["score"]
    # range ends (exclusive): widths 1, 1, 1, 1, 2, 2, 4, 4, 8, 8, ...; the last range is cut short by the end
    ends = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1000]
    assert [i for i, _ in points] == [end - 1 for end in ends[1:]]
    assert [v for _, v in points] == pytest.approx([(a + b - 1) / 2 for a, b in itertools.pairwise(ends)])
    running = chart["score (running mean)"]
    assert [i for i, _ in running] == [end - 1 for end in ends[1:]]
    assert [v for _, v in running] == pytest.approx([(end - 1) / 2 for end in ends[1:]])
    assert result["score"] == pytest.approx((n - 1) / 2)


@pytest.mark.parametrize("n", [10, 5_000, 200_000])
def test_unknown_length_chart_stays_near_max_points(n: int) -> None:
    """However long a run of unknown length goes, a series keeps about max_points points, never one per example."""

    @tracked_eval(verbose=False, max_points=1000)
    def evaluate() -> Iterator[float]:
        for i in range(n):
            yield float(i % 3)

    points = read_session(evaluate().session_dir).scalars["Training Progress"]["score"]
    assert len(points) <= max(n if n <= 250 else 0, 1500)
    assert [i for i, _ in points] == sorted({i for i, _ in points})  # every iteration once
    assert points[-1][0] == n - 1
