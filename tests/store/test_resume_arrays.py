"""resume=True over an ``(X, y)`` dataset: the arrays' rows are left out together."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tracked import TrackedWarning, tracked_eval


@pytest.mark.parametrize("kind", ["numpy", "pandas", "list"])
def test_an_x_y_pair_is_resumed_row_by_row(kind: str) -> None:
    """A crash at row 120 of (X, y); the resumed call gets rows 120 on of both, and the result covers all rows."""
    rows = 300
    x = np.arange(rows * 3, dtype=float).reshape(rows, 3)
    y = np.arange(rows) % 2
    pair: tuple[Any, Any] = {
        "numpy": (x, y),
        "pandas": (pd.DataFrame(x), pd.Series(y)),
        "list": (x.tolist(), y.tolist()),
    }[kind]
    seen: list[int] = []
    fail = [True]

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05, task_name=f"xy {kind}")
    def evaluate(dataset: tuple[Any, Any]) -> Iterator[dict[str, float]]:
        features, labels = dataset
        features = np.asarray(features)
        labels = np.asarray(labels)
        assert len(features) == len(labels)
        for row, label in zip(features, labels, strict=True):
            index = int(row[0]) // 3
            if index == 120 and fail[0]:
                raise RuntimeError("crash")
            assert index % 2 == label  # X and y stay aligned
            seen.append(index)
            yield {"acc": float(label)}

    with pytest.raises(RuntimeError):
        evaluate(pair)
    seen.clear()
    fail[0] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(pair)
    assert [str(w.message) for w in caught if issubclass(w.category, TrackedWarning)] == []
    assert seen == list(range(120, rows))
    assert result["num_examples"] == rows
    assert result["acc"] == pytest.approx(0.5)
