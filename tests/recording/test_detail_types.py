"""A detail column keeps its type (int, float, bool) when all its values share one: in the result, the
session read back, the artifact, and after resume."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tracked import batch, read_session, tracked_eval

DETAILS = ["label", "pred", "confidence", "correct"]


def artifact(session: Any) -> pd.DataFrame:
    task = json.loads((Path(session) / "task.json").read_text())
    (saved,) = [a for a in task["execution"]["artifacts"] if a["key"] == "examples"]
    frame: pd.DataFrame = pd.read_parquet(saved["uri"])  # the artifact is zstd parquet
    return frame


def check_types(frame: pd.DataFrame) -> None:
    assert frame["label"].dtype == np.int64
    assert frame["pred"].dtype == np.int64
    assert frame["confidence"].dtype == np.float64
    assert frame["correct"].dtype == np.bool_
    assert frame["label"].tolist() == [i % 3 for i in range(12)]
    assert frame["confidence"].tolist() == [i / 8 for i in range(12)]
    assert frame["correct"].tolist() == [i % 3 == (i + 1) % 3 for i in range(12)]
    assert frame["text"].tolist() == [f"t{i}" for i in range(12)]
    assert not pd.api.types.is_numeric_dtype(frame["text"])


def every_copy(result: Any) -> list[pd.DataFrame]:
    return [result.examples, read_session(result.session_dir).examples(), artifact(result.session_dir)]


def test_single_examples_keep_their_detail_types() -> None:
    """``label``/``pred`` ints, a float and a bool come back as int64, float64 and bool columns everywhere."""

    @tracked_eval(verbose=False, details=DETAILS)
    def evaluate(n: int) -> Iterator[dict[str, Any]]:
        for i in range(n):
            label, pred = i % 3, (i + 1) % 3
            yield {"acc": float(label == pred), "label": label, "pred": np.int64(pred), "confidence": i / 8,
                   "correct": label == pred, "text": f"t{i}"}  # fmt: skip

    for frame in every_copy(evaluate(12)):
        check_types(frame)
    cm = pd.crosstab(evaluate(12).examples["label"], evaluate(12).examples["pred"])  # no .astype(int) first
    assert cm.index.tolist() == [0, 1, 2]


def test_batches_keep_their_detail_types() -> None:
    """Detail columns of ``yield batch(...)`` (arrays and lists) keep their types too."""

    @tracked_eval(verbose=False, details=DETAILS)
    def evaluate() -> Iterator[Any]:
        labels = np.arange(12) % 3
        preds = (np.arange(12) + 1) % 3
        for part in (slice(0, 5), slice(5, 12)):
            yield batch(
                acc=(labels == preds)[part].astype(float),
                label=labels[part],
                pred=preds[part].tolist(),
                confidence=(np.arange(12) / 8)[part],
                correct=(labels == preds)[part].tolist(),
                text=[f"t{i}" for i in range(12)][part],
            )

    for frame in every_copy(evaluate()):
        check_types(frame)


def test_mixed_or_missing_values() -> None:
    """A column mixing types stays text; absent values make a nullable column (Int64, boolean)."""

    @tracked_eval(verbose=False, details=["label", "flag"])
    def evaluate() -> Iterator[dict[str, Any]]:
        yield {"acc": 1.0, "label": 1, "id": 7, "flag": True}
        yield {"acc": 0.0, "id": "seven"}
        yield {"acc": 1.0, "label": 2, "id": 8, "flag": False}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate()
    for frame in (result.examples, read_session(result.session_dir).examples()):
        assert str(frame["label"].dtype) == "Int64"
        assert frame["label"].tolist() == [1, pd.NA, 2]
        assert str(frame["flag"].dtype) == "boolean"
        assert frame["id"].tolist() == ["7", "seven", "8"]


def test_a_resumed_run_keeps_the_types_of_the_earlier_examples() -> None:
    """The examples taken from the resumed run's journal keep their detail types."""
    fail = [True]

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05, details=DETAILS, task_name="typed resume")
    def evaluate(dataset: list[int]) -> Iterator[dict[str, Any]]:
        for i in dataset:
            if i == 6 and fail[0]:
                raise RuntimeError("crash")
            label, pred = i % 3, (i + 1) % 3
            yield {"acc": float(label == pred), "label": label, "pred": pred, "confidence": i / 8,
                   "correct": label == pred, "text": f"t{i}"}  # fmt: skip

    with pytest.raises(RuntimeError):
        evaluate(list(range(12)))
    fail[0] = False
    for frame in every_copy(evaluate(list(range(12)))):
        check_types(frame)


def test_merged_shards_keep_detail_types_and_never_average_a_detail() -> None:
    """Shards merged from their results or their sessions: an int detail stays a detail, of its type."""
    from tracked import merge

    @tracked_eval(verbose=False, details=DETAILS, task_name="typed shards")
    def evaluate(dataset: list[int]) -> Iterator[dict[str, Any]]:
        for i in dataset:
            label, pred = i % 3, (i + 1) % 3
            yield {"acc": float(label == pred), "label": label, "pred": pred, "confidence": i / 8,
                   "correct": label == pred, "text": f"t{i}"}  # fmt: skip

    parts = [tracked_eval(shard=(k, 2))(evaluate)(list(range(k * 6, k * 6 + 6))) for k in range(2)]
    for merged in (merge(parts, verbose=False), merge([p.session_dir for p in parts], verbose=False)):
        assert set(merged) == {"acc", "num_examples", "duration_seconds", "num_shards", "dataset_num_eval"}
        for frame in every_copy(merged):
            check_types(frame)


@pytest.mark.parametrize("edited", ["oops", ["label"], {"label": 5, "pred": "int"}, {"label": "int", "text": "int"}])
def test_edited_detail_types_are_read_as_far_as_they_hold(edited: Any) -> None:
    """run.json's detail_types edited into another shape: the examples are read, typed only where the texts
    read back as that type, never a traceback."""

    @tracked_eval(verbose=False, details=DETAILS)
    def evaluate(n: int) -> Iterator[dict[str, Any]]:
        for i in range(n):
            yield {"acc": 1.0, "label": i % 3, "pred": (i + 1) % 3, "text": f"t{i}"}

    session = Path(str(evaluate(4).session_dir))
    state_file = session / "tracked" / "0" / "run.json"
    state = json.loads(state_file.read_text())
    state["detail_types"] = edited
    state_file.write_text(json.dumps(state))
    frame = read_session(session).examples()
    assert frame["text"].tolist() == ["t0", "t1", "t2", "t3"]  # "int" for text that is no int: kept as text
    assert [int(v) for v in frame["label"]] == [0, 1, 2, 0]


def test_a_float_detail_is_not_paired_as_a_metric() -> None:
    """compare --paired pairs metrics only: a detail typed float (a confidence) is left out."""
    from tracked.cli import main

    def run(name: str, shift: float) -> str:
        @tracked_eval(verbose=False, details=["confidence"], task_name=name)
        def evaluate() -> Iterator[dict[str, Any]]:
            for i in range(8):
                yield {"acc": float((i + shift) % 2 < 1), "confidence": i / 8 + shift, "id": i}

        return str(evaluate().session_dir)

    import io

    out, err = io.StringIO(), io.StringIO()
    assert main(["compare", run("A", 0.0), run("B", 0.5), "--paired", "--format", "json"], out=out, err=err) == 0
    assert [row["metric"] for row in json.loads(out.getvalue())["paired"]] == ["acc"]


def test_columns_parsed_in_c_read_as_a_value_at_a_time_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """int and float detail columns are parsed by pyarrow; every mix of what ``repr`` writes, absent
    values and text an edited journal may hold reads back as the value-at-a-time path reads it."""
    import tracked.common.values as values

    pool = ["7", "-3", "007", "0", "-0", None, "1e-05", "0.5", "nan", "inf", "-inf", "+5", " 5", "5_0",
            "9223372036854775808", "1.0", "", "NaN", "1.7976931348623157e+308", "x", 3]  # fmt: skip
    rng = np.random.default_rng(0)
    cases = []
    for case in range(2000):
        texts = np.empty(int(rng.integers(0, 12)), dtype=object)
        texts[:] = [pool[int(k)] for k in rng.integers(0, len(pool), len(texts))]
        cases.append((texts, ("int", "float")[case % 2]))
    fast = [values.typed_column(texts, kind) for texts, kind in cases]
    monkeypatch.setattr(values, "_parsed", lambda texts, kind: None)
    for (texts, kind), got in zip(cases, fast, strict=True):
        expected = values.typed_column(texts, kind)
        assert type(got) is type(expected)
        assert str(getattr(got, "dtype", "")) == str(getattr(expected, "dtype", ""))
        assert repr(list(got)) == repr(list(expected)), (texts, kind)
