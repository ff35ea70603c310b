"""Bad input never crashes a run or loses earlier examples; each case has a documented treatment."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.evaluations import yields
from support.scripts import run_script

from tracked import TrackedWarning, read_session, tracked_eval


@tracked_eval(verbose=False)
def returns(value: Any) -> Any:
    return value


def quietly(items: list[Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackedWarning)
        return yields(items)


def test_none_as_item_is_skipped_and_none_as_field_is_absent() -> None:
    """A None item is skipped with a warning; a None field means 'no such metric for this example'."""
    with pytest.warns(TrackedWarning, match="example 1: NoneType is neither"):
        result = yields([{"a": 1.0}, None, {"a": None, "b": 2.0}])
    assert result["num_examples"] == 3
    assert result["a"] == 1.0
    assert result["b"] == 2.0
    assert result["skipped_values"] == 1


def test_strings_are_details_in_a_mapping_and_skipped_as_items() -> None:
    """A string field is a detail; a bare string item is skipped with a warning naming its index."""
    with pytest.warns(TrackedWarning, match="example 0: str"):
        result = yields(["0.5", {"a": 1.0, "note": "0.5"}])
    assert "note" not in read_session(result.session_dir).scalars["Training Progress"]
    assert result.examples.loc[1, "note"] == "0.5"


def test_decimal_fraction_and_numpy_are_numbers() -> None:
    """Decimal, Fraction, numpy scalars of every kind and 0-d arrays are metrics."""
    items = [Decimal("0.25"), Fraction(3, 4), np.int64(1), np.float16(0.0), np.array(0.5)]
    result = yields(items)
    assert result["score"] == pytest.approx((0.25 + 0.75 + 1 + 0 + 0.5) / 5)
    assert [v for _, v in read_session(result.session_dir).scalars["Training Progress"]["score"]] == pytest.approx(
        [0.25, 0.75, 1.0, 0.0, 0.5]
    )


def test_integer_beyond_float_range_is_skipped_with_its_field_named() -> None:
    """10**400 cannot be a float: skipped with a warning naming example and field; the rest is kept."""
    with pytest.warns(TrackedWarning, match=r"example 1, field 'n': integer .* beyond float range"):
        result = yields([{"n": 1}, {"n": 10**400}, {"n": 3}])
    assert result["n"] == 2.0
    assert result["skipped_values"] == 1


def test_nested_mappings_and_lists_are_details_kept_as_text() -> None:
    """Nested mappings and lists are not metrics: they are kept as text details, never lost."""
    result = yields([{"acc": 1.0, "tokens": ["a", "b"], "meta": {"len": 2}}])
    assert result.examples.loc[0, "tokens"] == "['a', 'b']"
    assert result.examples.loc[0, "meta"] == "{'len': 2}"
    assert set(read_session(result.session_dir).scalars["Training Progress"]) == {"acc", "acc (running mean)"}


@dataclasses.dataclass
class Scores:
    accuracy: float
    f1: float


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.75, {"score": 0.75}),
        (Scores(0.5, 0.25), {"accuracy": 0.5, "f1": 0.25}),
        (pd.Series({"accuracy": 0.5}), {"accuracy": 0.5}),
    ],
)
def test_returned_non_dicts_are_converted(value: Any, expected: dict[str, float]) -> None:
    """A returned number, dataclass or pandas Series becomes the final metrics."""
    result = returns(value)
    for name, number in expected.items():
        assert result[name] == number
        assert read_session(result.session_dir).single_values[name] == number


def test_returned_tuple_is_kept_and_noted() -> None:
    """A returned tuple is not metrics: a warning, and it stays available as result.returned."""
    with pytest.warns(TrackedWarning, match="returned a tuple"):
        result = returns((1, 2))
    assert result.returned == (1, 2)
    assert "duration_seconds" in result


def test_zero_examples() -> None:
    """A generator that yields nothing: num_examples 0, no progress series, a completed run."""
    result = yields([])
    session = read_session(result.session_dir)
    assert result["num_examples"] == 0
    assert session.single_values["num_examples"] == 0
    assert session.scalars == {}
    assert session.status == "completed"


@pytest.mark.torch
def test_torch_scalar_tensors_are_numbers() -> None:
    """CPU torch scalar tensors are metrics, moved to the host in batches (not one by one)."""
    torch = pytest.importorskip("torch")
    items = [torch.tensor(i / 10) for i in range(10)] + [{"loss": torch.tensor(2.0)}]
    result = yields(items)
    assert result["score"] == pytest.approx(0.45)
    assert result["loss"] == 2.0
    with pytest.warns(TrackedWarning, match="not a scalar"):
        result = yields([torch.ones(3), torch.tensor(1.0)])
    assert result["score"] == 1.0


def test_huge_values_have_exact_means_and_the_session_stays_valid_json() -> None:
    """1e308 values: the mean is 1e308, alternating signs give 0, no inf/nan is ever written as a JSON number."""

    @tracked_eval(verbose=False, max_points=10)
    def evaluate(dataset: list[float]) -> Iterator[dict[str, float]]:
        for i, v in enumerate(dataset):
            yield {"big": v, "alternating": v if i % 2 else -v}

    result = evaluate([1e308] * 1000)
    assert result["big"] == 1e308
    assert result["alternating"] == 0.0
    folder = result.session_dir
    assert folder is not None
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} written as a JSON number"))
    chart = read_session(folder).scalars["Training Progress"]
    assert [v for _, v in chart["big"]] == [1e308] * 10
    assert chart["big (running mean)"][-1][1] == 1e308
    assert chart["alternating"][-1][1] == 0.0


LARGE_DETAILS = """
    import re
    from tracked import tracked_eval

    def peak():
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) // 1024

    @tracked_eval(verbose=False, flush_interval=0.2)
    def evaluate(n):
        for i in range(n):
            yield {"score": float(i), "answer": str(i % 10) * 2**20}  # a different 1 MB text each

    import clearml, pandas, pyarrow.parquet  # what every run imports: a fixed cost, not the details' memory
    base = peak()
    result = evaluate(N)
    print("GROWTH", peak() - base)
    print("SESSION", result.session_dir)
    print("CELL", result.examples["answer"][3][-80:])
"""


def test_large_details_keep_the_runs_memory_bounded(clearml_cache: Path) -> None:
    """300 details of 1 MB: memory grows far less than 300 MB (the run's own growth, its dependencies imported
    before: about 30 MB); the full texts are on disk, previews marked."""
    done = run_script(LARGE_DETAILS.replace("N)", "300)"), clearml_cache)
    assert done.returncode == 0, done.stderr
    out = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert int(out["GROWTH"]) < 60, out["GROWTH"]
    assert out["CELL"].endswith("[1,048,576 characters in all; the full text is in long-details.jsonl]")
    session = Path(out["SESSION"])
    lines = (session / "tracked" / "0" / "long-details.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300
    assert json.loads(lines[3]) == [3, "answer", "3" * 2**20]


def test_infinite_intervals_are_refused_when_decorating() -> None:
    """flush_interval=inf (or nan, or 0) is a clear error at decoration, not a dead live thread."""
    from tracked.common.options import SettingsError

    for bad in (float("inf"), float("nan"), 0, -1):
        with pytest.raises(SettingsError, match="flush_interval"):
            tracked_eval(flush_interval=bad)


# -- property: final metrics equal an independent reference computation -------------------------

NAMES = st.sampled_from(["a", "b", "score"])


VALUES = st.one_of(
    st.floats(min_value=-1e12, max_value=1e12),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)


ITEMS = st.one_of(VALUES, st.dictionaries(NAMES, VALUES, max_size=3))


def reference(items: list[Any]) -> tuple[dict[str, float], dict[str, int], int]:
    """Means over finite values, non-finite counts and skipped count, computed the plain way."""
    values: dict[str, list[float]] = {}
    skipped = 0
    for item in items:
        fields = item.items() if isinstance(item, dict) else [("score", item)]
        for name, value in fields:
            if isinstance(value, (bool, int, float)):
                values.setdefault(name, []).append(float(value))
            elif not isinstance(item, dict):
                skipped += 1  # a bare None or string item
    means = {}
    nonfinite = {}
    for name, column in values.items():
        finite = [v for v in column if math.isfinite(v)]
        means[name] = math.fsum(finite) / len(finite) if finite else math.nan
        if len(finite) < len(column):
            nonfinite[name] = len(column) - len(finite)
    return means, nonfinite, skipped


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ITEMS, max_size=12))
def test_final_metrics_match_a_reference(items: list[Any]) -> None:
    """Random yielded structures: the result equals the reference, and nothing raises."""
    result = quietly(items)
    means, nonfinite, skipped = reference(items)
    assert result["num_examples"] == len(items)
    for name, mean in means.items():
        if math.isnan(mean):
            assert math.isnan(result[name])
        else:
            assert result[name] == pytest.approx(mean, rel=1e-9, abs=1e-9)
        assert result.get(f"{name}_nonfinite_count", 0) == nonfinite.get(name, 0)
    assert result.get("skipped_values", 0) == skipped
    assert len(result.examples) == len(items)


def test_an_x_y_pair_counts_rows_and_the_summary_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    """scikit-learn's (X_test, y_test): dataset_num_eval is the number of rows, and the summary says the same."""
    import numpy as np

    @tracked_eval
    def evaluate(model: object, dataset: tuple[object, object]) -> dict[str, float]:
        return {"accuracy": 0.9}

    result = evaluate(None, dataset=(np.zeros((5, 3)), np.zeros(5)))
    assert result["dataset_num_eval"] == 5
    assert result["num_examples"] == 5
    assert "completed in" in capsys.readouterr().out.split(", 5 examples")[0]
    ambiguous = evaluate(None, dataset=(np.zeros((5, 3)), np.zeros(4)))
    assert "dataset_num_eval" not in ambiguous


def test_labels_ids_and_predictions_are_details_not_metrics() -> None:
    """{"correct": 1, "label": 7, "pred": 7}: only `correct` is averaged; the others are kept per example."""

    @tracked_eval(verbose=False)
    def evaluate(rows: list[dict[str, int]]) -> Iterator[dict[str, int]]:
        yield from rows

    rows = [{"correct": int(i % 3 == 0), "label": i % 10, "pred": (i + 1) % 10, "question_id": i} for i in range(30)]
    result = evaluate(rows)
    assert set(result) == {"correct", "num_examples", "duration_seconds"}
    assert list(result.stats.index) == ["correct"]
    assert list(result.examples["label"][:3]) == [0, 1, 2]  # a detail keeps its type
    assert list(result.examples["question_id"][-1:]) == [29]


def test_an_integer_field_averaged_warns_once_and_the_options_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    @tracked_eval(verbose=False)
    def evaluate(rows: list[dict[str, int]]) -> Iterator[dict[str, int]]:
        yield from rows

    rows = [{"correct": 1, "bucket": 7, "tier": 3}, {"correct": 0, "bucket": 2, "tier": 5}]
    with pytest.warns(UserWarning, match="field 'bucket' holds an integer") as caught:
        result = evaluate(rows)
    assert len([w for w in caught if "holds an integer" in str(w.message)]) == 1
    assert result["bucket"] == 4.5  # averaged, as asked: the warning says how to keep it a detail

    chosen = tracked_eval(verbose=False, metrics=["correct"])(evaluate.__wrapped__)
    assert set(chosen(rows)) == {"correct", "num_examples", "duration_seconds"}
    named = tracked_eval(verbose=False, details=["bucket"])(evaluate.__wrapped__)
    with pytest.warns(UserWarning, match="field 'tier' holds an integer"):
        assert "bucket" not in named(rows)
    monkeypatch.setenv("TRACKED_METRICS", "correct, tier")
    from_env = tracked_eval(verbose=False)(evaluate.__wrapped__)
    assert set(from_env(rows)) >= {"correct", "tier"}
    assert "bucket" not in from_env(rows)


@pytest.mark.parametrize(
    ("name", "metric"),
    [("keys", False), ("indices", False), ("sampleID", False), ("questionId", False), ("y_pred", False),
     ("y_loss", True), ("label_smoothing_loss", True), ("accuracy", True)],
)  # fmt: skip
def test_the_label_rule_reads_names_by_their_last_word(name: str, metric: bool) -> None:
    from tracked.common.options import Settings
    from tracked.recording.recorder import is_metric

    assert is_metric(name, Settings()) is metric
