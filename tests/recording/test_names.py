"""A user's field named like one of tracked's own values never takes their place."""

from __future__ import annotations

import numpy as np
import pytest

from tracked import TrackedWarning, batch, read_session, tracked_eval


def test_yielded_fields_named_like_trackeds_own_values_are_recorded_under_another_name() -> None:
    """duration_seconds, num_examples, <m>_stderr, <m>_nonfinite_count and '<m> (running mean)' yielded per
    example are recorded as '<name> (yielded)' (one warning each); the run's own values keep their names,
    in the result and in what ClearML wrote, and the chart has no series shared with a running mean."""

    @tracked_eval(task_name="names", verbose=False)
    def evaluate():  # type: ignore[no-untyped-def]
        for i in range(10):
            yield {"acc": float(i % 2), "duration_seconds": 0.5, "acc_stderr": 9.0, "acc (running mean)": 1.0}
        yield batch(acc=np.array([1.0, 0.0]), duration_seconds=np.array([0.25, 0.25]), loss_nonfinite_count=[3, 3])

    with pytest.warns(TrackedWarning) as caught:
        result = evaluate()
    renamed = [str(w.message) for w in caught if "a name tracked gives its own values" in str(w.message)]
    assert len(renamed) == 4
    assert result["num_examples"] == 12
    assert result["duration_seconds"] < 60
    assert result["duration_seconds (yielded)"] == pytest.approx(5.5 / 12)
    assert result["acc_stderr (yielded)"] == 9.0
    assert result["acc (running mean) (yielded)"] == 1.0
    assert result["loss_nonfinite_count (yielded)"] == 3.0
    assert list(result.examples.columns)[:2] == ["acc", "duration_seconds (yielded)"]
    session = read_session(result.session_dir)  # type: ignore[arg-type]
    values = session.single_values
    assert values["num_examples"] == 12
    assert values["duration_seconds"] == result["duration_seconds"]
    assert values["acc_stderr"] == pytest.approx(result.stats.loc["acc", "stderr"])
    assert values["acc_stderr (yielded)"] == 9.0
    chart = session.scalars["Training Progress"]
    assert [p for _, p in chart["acc (running mean)"]][-1] == pytest.approx(0.5)
    assert [p for _, p in chart["acc (running mean) (yielded)"]][-1] == 1.0


def test_a_returned_final_metric_keeps_its_name_and_trackeds_single_value_of_it_is_left_out() -> None:
    """The function's own returned acc_stderr is the final metric, in the result and in ClearML alike."""

    @tracked_eval(task_name="returned", verbose=False)
    def evaluate():  # type: ignore[no-untyped-def]
        yield from ({"acc": float(i % 2)} for i in range(10))
        return {"acc_stderr": 42.0, "num_examples": 7}

    result = evaluate()
    assert result["acc_stderr"] == 42.0
    assert result["num_examples"] == 7
    values = read_session(result.session_dir).single_values  # type: ignore[arg-type]
    assert values["acc_stderr"] == 42.0
    assert values["num_examples"] == 7
