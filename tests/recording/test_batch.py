"""Batched yields: the same examples per example and in batches give identical results and sessions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tracked import batch, read_session, tracked_eval

N = 1000
rng = np.random.default_rng(17)
CORRECT = (rng.random(N) < 0.7).astype(float)
LOSS = rng.normal(1.0, 0.3, N)
LOSS[[5, 400]] = [math.nan, math.inf]
LABELS = rng.integers(0, 10, N)
TEXTS = [f"answer {i}" for i in range(N)]
SIZES = [1, 7, 100, 250, 2, 340, 300]  # uneven, summing to N


def single(i: int) -> dict[str, Any]:
    item: dict[str, Any] = {"correct": CORRECT[i], "label": int(LABELS[i]), "prediction": TEXTS[i]}
    if i % 3 and not 360 <= i < 700:  # a metric some examples (and one whole batch) lack
        item["loss"] = float(LOSS[i])
    return item


@tracked_eval(verbose=False, task_name="one by one", max_points=200)
def per_example() -> Iterator[dict[str, Any]]:
    for i in range(N):
        yield single(i)


def batches(kind: str) -> Iterator[Any]:
    start = 0
    for number, size in enumerate(SIZES):
        part = range(start, start + size)
        if number == 3:  # mixed in: single yields between batches
            for i in part:
                yield single(i)
        else:
            loss = [float(LOSS[i]) if i % 3 else None for i in part]
            columns: dict[str, Any] = {
                "correct": CORRECT[start : start + size],
                "label": LABELS[start : start + size],
                "prediction": TEXTS[start : start + size],
            }
            if number != 5:  # examples 360-699: a batch without the metric
                columns["loss"] = loss
            if kind == "torch":
                import torch

                columns["correct"] = torch.tensor(columns["correct"])
                columns["label"] = torch.tensor(columns["label"])
            elif kind == "pandas":
                columns["correct"] = pd.Series(columns["correct"])
            yield batch(columns)
        start += size


@pytest.mark.parametrize("kind", ["numpy", pytest.param("torch", marks=pytest.mark.torch), "pandas"])
def test_batches_give_what_single_yields_give(kind: str) -> None:
    if kind == "torch":
        pytest.importorskip("torch")

    @tracked_eval(verbose=False, task_name="batched", max_points=200)
    def batched() -> Iterator[Any]:
        yield from batches(kind)

    with pytest.warns(UserWarning, match="NaN or infinite"):
        one = per_example()
    with pytest.warns(UserWarning, match="NaN or infinite"):
        many = batched()
    assert dict(one) == pytest.approx({**dict(many), "duration_seconds": one["duration_seconds"]}, nan_ok=True)
    assert set(one) == {"correct", "loss", "loss_nonfinite_count", "num_examples", "duration_seconds"}
    pd.testing.assert_frame_equal(one.examples, many.examples)
    pd.testing.assert_frame_equal(one.stats, many.stats)
    first, second = read_session(one.session_dir), read_session(many.session_dir)
    assert first.scalars == second.scalars  # the same progress points and running means
    pd.testing.assert_frame_equal(first.examples(), second.examples())


def test_a_bad_batch_is_one_warning_and_nothing_else_is_lost() -> None:
    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield batch(score=np.array([1.0, 2.0]))
        yield batch(score=np.array([1.0, 2.0, 3.0]), id=["a", "b"])  # lengths differ
        yield batch(score=np.zeros((2, 2)))  # 2-D
        yield batch(score=np.array([]))  # empty: no examples
        yield 3.0

    with pytest.warns(
        UserWarning, match=r"batch yielded at example 2 is skipped: its columns differ in length: score=3, id=2"
    ):
        result = evaluate()
    assert result["num_examples"] == 3
    assert result["score"] == 2.0
    assert result.examples["score"].tolist() == [1.0, 2.0, 3.0]


def test_a_scalar_field_applies_to_every_example_and_names_need_not_be_identifiers() -> None:
    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield batch({"exact match": np.array([1, 0, 1])}, split="dev", weight=2.0)

    result = evaluate()
    assert result["exact match"] == pytest.approx(2 / 3)
    assert result["weight"] == 2.0
    assert result.examples["split"].tolist() == ["dev"] * 3


def test_tracked_keeps_no_reference_to_the_callers_arrays() -> None:
    import gc
    import weakref

    refs: list[weakref.ref[Any]] = []

    class Scores(np.ndarray):  # a weakly referenceable array
        pass

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        for _ in range(3):
            scores = np.arange(4.0).view(Scores)
            refs.append(weakref.ref(scores))
            yield batch(score=scores)
            del scores

    result = evaluate()
    gc.collect()
    assert result["num_examples"] == 12
    assert all(ref() is None for ref in refs)


def test_batches_in_lazy_and_async_generators() -> None:
    import asyncio
    from collections.abc import AsyncIterator

    @tracked_eval(verbose=False, lazy=True)
    def lazy() -> Iterator[Any]:
        yield batch(score=np.array([1.0, 2.0]))
        yield batch(score=[3.0, 4.0])

    with lazy() as gen:
        assert [type(item).__name__ for item in gen] == ["batch", "batch"]  # items pass through unchanged
    assert gen.result is not None
    assert gen.result["num_examples"] == 4
    assert gen.result["score"] == 2.5

    @tracked_eval(verbose=False)
    async def asynchronous() -> AsyncIterator[Any]:
        yield batch(score=np.array([1.0, 0.0, 1.0, 0.0]))

    assert asyncio.run(asynchronous())["score"] == 0.5


def test_long_texts_in_a_batch_are_spilled_like_single_ones() -> None:
    long = "x" * 5000

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield batch(score=[1.0, 2.0], answer=["short", long])

    result = evaluate()
    assert result.examples["answer"][0] == "short"
    assert result.examples["answer"][1].endswith("[5,000 characters in all; the full text is in long-details.jsonl]")


@pytest.mark.parametrize(
    "values",
    [[1, 10**400, 2], [1 + 2j, 3], [None, None], [1, "x", 0.5], [1, 2], [3, 4]],
    ids=["too big", "complex", "all None", "mixed", "small ints", "label-like ints"],
)
def test_a_list_column_is_taken_value_by_value_like_single_yields(values: list[Any]) -> None:
    import warnings

    @tracked_eval(verbose=False)
    def one() -> Iterator[Any]:
        for value in values:
            yield {"c": value}

    @tracked_eval(verbose=False)
    def many() -> Iterator[Any]:
        yield batch(c=values)

    with warnings.catch_warnings(record=True) as singly:
        warnings.simplefilter("always")
        a = one()
    with warnings.catch_warnings(record=True) as batched:
        warnings.simplefilter("always")
        b = many()
    assert dict(a) == pytest.approx({**dict(b), "duration_seconds": a["duration_seconds"]}, nan_ok=True)
    pd.testing.assert_frame_equal(a.examples, b.examples)
    assert len(singly) == len(batched)


def test_every_batched_text_reaches_the_journal_while_the_live_thread_looks_all_the_time() -> None:
    # The live thread once took a batch cut short (it looked while the next batch was being taken) and
    # never came back for the rest: examples lost their texts in the session, though not in memory.
    n, size = 100_000, 4

    @tracked_eval(verbose=False, flush_interval=0.001)
    def evaluate() -> Iterator[Any]:
        for start in range(0, n, size):
            yield batch(score=[1.0] * size, answer=[f"t{i}" for i in range(start, start + size)])

    result = evaluate()
    assert result.session_dir is not None
    written = read_session(result.session_dir).examples()
    assert len(written) == n
    assert written["answer"].tolist() == [f"t{i}" for i in range(n)]


def _both(singles: list[Any], batches: list[Any], **options: Any) -> tuple[Any, Any]:
    @tracked_eval(verbose=False, task_name="one by one", **options)
    def one() -> Iterator[Any]:
        yield from singles

    @tracked_eval(verbose=False, task_name="batched", **options)
    def many() -> Iterator[Any]:
        yield from batches

    return one(), many()


TORCH_CASE = "numpy and torch elements"


def _cases() -> dict[str, tuple[list[Any], list[Any], dict[str, Any]]]:
    """Each case by name: what is yielded one by one, the same in batches, the options. The torch case needs
    torch to be built: without it, it is empty (and its test skips), so the cases are listed all the same."""
    try:
        import torch
    except ImportError:
        torch = None

    big = [2**53 + 1, 2**60 + 7]
    labels = np.array([3, 7])
    state = {"step": 0}
    texts: list[Any] = ["x", state]
    return {
        # ids past 2**53 stay exact (not rounded through float64), as do uint64 and scalar ids
        "big ids": ([{"s": 1.0, "id": i} for i in big], [batch(s=[1.0, 1.0], id=big)], {}),
        "uint64": (
            [{"s": 1.0, "id": 2**64 - 1}],
            [batch(s=np.ones(1), id=np.array([2**64 - 1], dtype=np.uint64))],
            {},
        ),
        "scalar id and label": (
            [{"s": 1.0, "id": 2**53 + 1, "label": True}] * 2,
            [batch(s=[1.0, 1.0], id=2**53 + 1, label=True)],
            {},
        ),
        TORCH_CASE: (
            [{"s": 1.0, "label": labels[i], "y_pred": torch.tensor([3, 7])[i]} for i in range(2)],
            [batch(s=[1.0, 1.0], label=labels, y_pred=torch.tensor([3, 7]))],
            {},
        )
        if torch is not None
        else ([], [], {}),
        "mixed label list": (
            [{"s": 1.0, "label": 1}, {"s": 1.0, "label": "x"}],
            [batch(s=[1.0, 1.0], label=[1, "x"])],
            {},
        ),
        "masked": (
            [{"c": 1.0}, {"c": None}, {"c": 0.0}],
            [batch(c=np.ma.masked_array([1.0, 5.0, 0.0], mask=[False, True, False]))],
            {},
        ),
        "range": ([{"s": 1.0, "idx": i} for i in range(3)], [batch(s=np.ones(3), idx=range(3))], {}),
        "bad scalar": ([{"s": 1.0, "k": 10**400}, {"s": 0.0, "k": 10**400}], [batch(s=[1.0, 0.0], k=10**400)], {}),
        "field order": (
            [{"s": 1.0, "prediction": "p", "label": 2}],
            [batch(s=np.ones(1), prediction=["p"], label=np.array([2]))],
            {},
        ),
        "past max_metrics": (
            [{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}],
            [batch(a=[1.0], b=[2.0], c=[3.0], d=[4.0])],
            {"max_metrics": 2},
        ),
        # a value in a text column is written as the batch is taken, not later (it may change after the yield)
        "text column with an object": (
            [{"s": 1.0, "p": "x"}, {"s": 1.0, "p": dict(state)}],
            [batch(s=[1.0, 1.0], p=texts)],
            {},
        ),
    }


@pytest.mark.parametrize(
    "case", [pytest.param(case, marks=pytest.mark.torch) if case == TORCH_CASE else case for case in _cases()]
)
@pytest.mark.filterwarnings("ignore")
def test_hostile_columns_give_what_single_yields_give(case: str) -> None:
    if case == TORCH_CASE:
        pytest.importorskip("torch")
    singles, batches, options = _cases()[case]
    one, many = _both(singles, batches, **options)
    assert {k: v for k, v in many.metrics.items() if k != "duration_seconds"} == {
        k: v for k, v in one.metrics.items() if k != "duration_seconds"
    }
    pd.testing.assert_frame_equal(many.examples, one.examples)


@pytest.mark.torch
def test_columns_tracked_cannot_read_are_a_skipped_batch_and_bfloat16_is_read() -> None:
    torch = pytest.importorskip("torch")

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield batch(loss=torch.ones(4))
        yield batch(loss=torch.full((4,), 0.5, dtype=torch.bfloat16))  # the per-example loss of a bf16 model
        yield batch(loss=torch.ones(4).to_sparse())
        yield batch(loss=(x for x in [1.0, 2.0]))  # a generator: no length, read once
        yield batch(extra=np.array([]))  # empty (a mask that kept nothing): nothing, no metric named by it

    with pytest.warns(UserWarning, match=r"batch yielded at example 8 is skipped: field 'loss': a torch.sparse_coo"):
        result = evaluate()
    assert result["num_examples"] == 8
    assert result["loss"] == 0.75
    assert "extra" not in result.metrics
    assert result["skipped_values"] == 2


def test_an_object_whose_repr_raises_in_a_text_column_is_named_and_nothing_is_lost() -> None:
    # It once stopped the journal for good: the session stayed "running" with no example, every metric lost.
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("repr failed")

    @tracked_eval(verbose=False, flush_interval=0.01)
    def evaluate() -> Iterator[Any]:
        yield batch(s=[1.0, 0.0], p=["x", Hostile()])
        yield batch(s=[1.0, 0.0], p=["y", "z"])

    result = evaluate()
    assert result["s"] == 0.5
    assert result.examples["p"].tolist() == ["x", "<Hostile that cannot be shown: RuntimeError: repr failed>", "y", "z"]
    assert result.session_dir is not None
    session = read_session(result.session_dir)
    assert session.status == "completed"
    assert session.examples()["p"].tolist() == result.examples["p"].tolist()


def test_a_dataframe_is_a_batch_of_its_columns() -> None:
    """``yield batch(df)``: each column is a field (metrics, details), as batch(**columns) would take them."""
    frame = pd.DataFrame(
        {"acc": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0], "label": [0, 1, 2, 0, 1, 2], "prediction": list("abcdef")}
    )

    @tracked_eval(verbose=False, details=["label"])
    def evaluate() -> Iterator[Any]:
        yield batch(frame.iloc[:4])
        yield batch(frame.iloc[4:], weight=2.0)  # a slice keeps its index (4, 5): values are taken in order

    result = evaluate()
    assert result["num_examples"] == 6
    assert result["acc"] == pytest.approx(4 / 6)
    assert result["weight"] == 2.0
    assert result.examples["label"].tolist() == [0, 1, 2, 0, 1, 2]
    assert result.examples["prediction"].tolist() == list("abcdef")
