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


@pytest.mark.parametrize("order", ["own-first", "literal-first", "literal-later"])
def test_a_field_renamed_never_shares_a_series_with_a_field_yielded_under_its_new_name(order: str) -> None:
    """duration_seconds yielded beside a field literally named 'duration_seconds (yielded)' (in the same
    example, either order, or in later examples only): two series, each with its own values; the renamed
    one takes a name nobody yielded, and the warning names it."""

    def item(i: int) -> dict[str, float]:
        own, literal = {"duration_seconds": 1.0}, {"duration_seconds (yielded)": 2.0}
        if order == "literal-later":
            return own if i < 5 else {**own, **literal}
        return {**own, **literal} if order == "own-first" else {**literal, **own}

    @tracked_eval(task_name="collide", verbose=False)
    def evaluate():  # type: ignore[no-untyped-def]
        for i in range(10):
            yield {"acc": float(i % 2), **item(i)}

    with pytest.warns(TrackedWarning) as caught:
        result = evaluate()
    messages = [str(w.message) for w in caught]
    literal = 2.0
    renamed = {name: value for name, value in result.items() if name.startswith("duration_seconds (yielded")}
    assert len(renamed) == 2, result
    assert sorted(renamed.values()) == [1.0, literal]  # never a mean of the two fields' values
    (own_name,) = [name for name, value in renamed.items() if value == 1.0]
    assert any(f"'duration_seconds', a name tracked gives its own values; it is recorded as {own_name!r}" in m
               for m in messages)  # fmt: skip
    if order != "literal-later":
        assert renamed["duration_seconds (yielded)"] == literal  # the name the user yielded is kept
    assert result["duration_seconds"] < 60  # the run's own
    columns = [c for c in result.examples.columns if str(c).startswith("duration_seconds")]
    assert sorted(result.examples[columns].mean().tolist()) == [1.0, literal]
    session = read_session(result.session_dir)  # type: ignore[arg-type]
    assert {k: v for k, v in session.single_values.items() if k in renamed} == renamed


def test_a_listed_metric_named_like_trackeds_own_is_not_said_missing() -> None:
    """metrics=["duration_seconds"]: its values are recorded as 'duration_seconds (yielded)' with one
    warning saying so, never a warning that no example had it."""

    @tracked_eval(task_name="listed", verbose=False, metrics=["acc", "duration_seconds"])
    def evaluate():  # type: ignore[no-untyped-def]
        for i in range(4):
            yield {"acc": float(i % 2), "duration_seconds": 0.5}

    with pytest.warns(TrackedWarning) as caught:
        result = evaluate()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "which no example had" in m], messages
    assert [m for m in messages if "it is recorded as 'duration_seconds (yielded)'" in m]
    assert result["duration_seconds (yielded)"] == 0.5


def test_past_max_metrics_a_field_named_like_trackeds_own_is_not_said_renamed() -> None:
    """max_metrics=1: duration_seconds, a second metric, goes to '(more metrics)' as the warning about
    max_metrics says; no warning names a series that does not exist."""

    @tracked_eval(task_name="full", verbose=False, max_metrics=1)
    def evaluate():  # type: ignore[no-untyped-def]
        for i in range(4):
            yield {"acc": float(i % 2), "duration_seconds": 0.5}

    with pytest.warns(TrackedWarning) as caught:
        result = evaluate()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "it is recorded as" in m], messages
    assert [m for m in messages if "max_metrics" in m]
    assert "duration_seconds (yielded)" not in result
    assert result.examples["(more metrics)"].tolist() == ["duration_seconds=0.5"] * 4
