"""What a run leaves in its offline session, read back from the files ClearML wrote."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tracked import TrackedWarning, log_metrics, read_session, tracked_eval


@tracked_eval
def scored(values: list[Any]) -> Iterator[Any]:
    yield from values


def test_each_metric_is_a_progress_series_with_a_running_mean() -> None:
    """Every numeric field is one point per example at its index; its running mean is a series beside it."""
    items = [{"acc": 1.0, "f1": 0.5}, {"acc": 0.0, "f1": 1.0}, {"acc": 1.0, "f1": 0.0}]
    session = read_session(scored(items).session_dir)
    chart = session.scalars["Training Progress"]
    assert chart["acc"] == [(0, 1.0), (1, 0.0), (2, 1.0)]
    assert chart["f1"] == [(0, 0.5), (1, 1.0), (2, 0.0)]
    running = chart["acc (running mean)"]
    assert [i for i, _ in running] == [0, 1, 2]
    assert [v for _, v in running] == pytest.approx([1.0, 0.5, 2 / 3])


def test_final_metrics_are_single_values_never_iteration_zero_scalars() -> None:
    """Final metrics go through report_single_value; no scalar sits at iteration 0 outside the progress chart."""
    session = read_session(scored([0.25, 0.75]).session_dir)
    assert session.single_values["score"] == 0.5
    assert session.single_values["num_examples"] == 2
    assert "duration_seconds" in session.single_values
    assert set(session.scalars) == {"Training Progress"}


def test_final_metrics_table_has_metric_and_value_columns() -> None:
    """One PLOTS table, 'Final Metrics', columns Metric | Value, one row per final metric."""
    result = scored([{"acc": 1.0}, {"acc": 0.0}])
    table = read_session(result.session_dir).tables["Final Metrics"]
    assert table.header == ["Metric", "Value"]
    rows = dict((metric, value) for metric, value in table.rows)
    assert list(rows) == list(result)
    assert rows["acc"] == 0.5
    assert rows["num_examples"] == 2


def test_details_are_not_metrics_and_appear_in_the_console() -> None:
    """Non-numeric fields are the example's details: no series, shown with the first examples."""
    items = [{"ok": 1.0, "prediction": "Paris", "reference": "paris", "id": "q1"}]
    result = scored(items)
    session = read_session(result.session_dir)
    assert set(session.scalars["Training Progress"]) == {"ok", "ok (running mean)"}
    assert "prediction=Paris" in session.console
    assert "id=q1" in session.console
    assert "ok" in session.console
    assert "num_examples" in session.console
    assert list(result.examples.columns) == ["ok", "prediction", "reference", "id"]


def test_summary_is_printed_with_the_session_location(capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal gets the summary, where the session is, and the command that uploads it."""
    result = scored([1.0])
    out = capsys.readouterr().out
    assert "score" in out
    assert "num_examples" in out
    assert str(result.session_dir) in out
    assert f"upload it later: tracked upload {result.session_dir}" in out
    assert "clearml-task" not in out  # it would mark every task completed, and upload twice on a second run


def test_verbose_off_prints_nothing_of_ours(capsys: pytest.CaptureFixture[str]) -> None:
    """verbose=False keeps the terminal quiet; the console text still reaches the session."""

    @tracked_eval(verbose=False)
    def quiet() -> Iterator[float]:
        yield 1.0

    result = quiet()
    assert "tracked:" not in capsys.readouterr().out
    assert "tracked: " in read_session(result.session_dir).console


def test_sparse_metrics_keep_their_own_example_indices() -> None:
    """A metric missing from some examples is charted at the indices where it was present."""
    items = [{"a": 1.0}, {"b": 2.0}, {"a": 3.0, "b": 4.0}, {"a": 5.0}]
    result = scored(items)
    chart = read_session(result.session_dir).scalars["Training Progress"]
    assert chart["a"] == [(0, 1.0), (2, 3.0), (3, 5.0)]
    assert chart["b"] == [(1, 2.0), (2, 4.0)]
    assert result["a"] == 3.0
    assert result["b"] == 3.0
    assert math.isnan(result.examples["a"][1])


def test_bools_and_numpy_scalars_are_numbers() -> None:
    """bool counts as 0/1 (accuracy from `pred == ref`); numpy scalars and 0-d arrays are plain numbers."""
    items = [{"correct": True}, {"correct": np.bool_(False)}, {"correct": np.float32(1.0)}, {"correct": np.array(1)}]
    result = scored(items)
    assert result["correct"] == 0.75
    assert read_session(result.session_dir).scalars["Training Progress"]["correct"][1] == (1, 0.0)


def test_model_and_dataset_arguments_add_sizes(tmp_path: Path) -> None:
    """A 'model' argument gives model_size_bytes (array bytes, file size); a sized 'dataset' gives dataset_num_eval."""
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x" * 1234)

    @tracked_eval
    def evaluate(model: Any, dataset: list[int]) -> Iterator[float]:
        for _ in dataset:
            yield 1.0

    result = evaluate(weights, [1, 2, 3])
    assert result["model_size_bytes"] == 1234
    assert result["dataset_num_eval"] == 3
    singles = read_session(result.session_dir).single_values
    assert singles["model_size_bytes"] == 1234
    assert singles["dataset_num_eval"] == 3
    assert evaluate(model=np.zeros(10), dataset=[1])["model_size_bytes"] == 80


def test_model_and_dataset_names_are_options() -> None:
    """model_arg/dataset_arg point at other parameter names; a folder's size is the sum of its files."""

    @tracked_eval(model_arg="net", dataset_arg="rows")
    def evaluate(net: Any, rows: Any) -> dict[str, float]:
        return {"x": 1.0}

    class Module:  # the shape of a torch module: parameters() and buffers() of tensors
        class T:
            def __init__(self, n: int) -> None:
                self.n = n

            def numel(self) -> int:
                return self.n

            def element_size(self) -> int:
                return 4

        def parameters(self) -> list[Any]:
            return [self.T(10), self.T(5)]

        def buffers(self) -> list[Any]:
            return [self.T(1)]

    result = evaluate(Module(), range(7))
    assert result["model_size_bytes"] == 64
    assert result["dataset_num_eval"] == 7
    assert result["num_examples"] == 7  # a plain function: the dataset's size


def test_generator_with_a_dataset_counts_what_it_yielded() -> None:
    """num_examples is what was yielded even when the dataset is larger."""

    @tracked_eval
    def evaluate(dataset: list[int]) -> Iterator[float]:
        for x in dataset[:2]:
            yield float(x)

    result = evaluate([1, 2, 3, 4])
    assert result["num_examples"] == 2
    assert result["dataset_num_eval"] == 4


def test_invalid_item_warns_with_index_and_field_and_keeps_the_rest() -> None:
    """A value that is no number is skipped with a warning naming the example and field."""
    items: list[Any] = [{"acc": 1.0}, {"acc": np.ones(3)}, "oops", {"acc": 0.0}]
    with pytest.warns(TrackedWarning) as caught:
        result = scored(items)
    messages = [str(w.message) for w in caught]
    assert any("example 1, field 'acc'" in m and "not a scalar" in m for m in messages)
    assert any("example 2" in m and "neither a number nor a mapping" in m for m in messages)
    assert result["acc"] == 0.5
    assert result["num_examples"] == 4
    assert result["skipped_values"] == 2
    chart = read_session(result.session_dir).scalars["Training Progress"]["acc"]
    assert chart == [(0, 1.0), (3, 0.0)]


def test_nan_is_excluded_from_the_mean_and_never_written_as_zero() -> None:
    """NaN/inf are left out of means and charts (ClearML would write 0.0) and counted."""
    with pytest.warns(TrackedWarning, match="NaN or infinite"):
        result = scored([1.0, math.nan, math.inf, 0.0])
    assert result["score"] == 0.5
    assert result["score_nonfinite_count"] == 2
    chart = read_session(result.session_dir).scalars["Training Progress"]["score"]
    assert chart == [(0, 1.0), (3, 0.0)]


def test_all_nan_metric_is_not_a_single_value_and_shows_as_text() -> None:
    """A final NaN is not reported as a single value (it would read 0.0); the table shows 'nan'."""
    with pytest.warns(TrackedWarning):
        result = scored([math.nan])
    session = read_session(result.session_dir)
    assert "score" not in session.single_values
    assert dict(map(tuple, session.tables["Final Metrics"].rows))["score"] == "nan"  # type: ignore[arg-type]


def test_log_metrics_helper_writes_single_values_and_table() -> None:
    """log_metrics(logger, metrics), for code without the decorator, writes the same single values and table."""
    from clearml import Task

    Task.set_offline(True)
    task = Task.init(
        project_name="tests", task_name="helper", auto_connect_streams=False, auto_resource_monitoring=False
    )
    folder = task.get_offline_mode_folder()
    log_metrics(task.get_logger(), {"token_recall": 0.6667, "num_examples": 10})
    task.close()
    session = read_session(folder)
    assert session.single_values == {"token_recall": 0.6667, "num_examples": 10}
    assert session.tables["Final Metrics"].rows == [["token_recall", 0.6667], ["num_examples", 10]]


def test_running_task_is_reported_into_and_left_open() -> None:
    """With a task already running, tracked reports into it and does not close it."""
    from clearml import Task

    Task.set_offline(True)
    task = Task.init(
        project_name="tests", task_name="outer", auto_connect_streams=False, auto_resource_monitoring=False
    )
    try:
        result = scored([1.0, 0.0])
        assert result.task_id == task.id
        folder = task.get_offline_mode_folder()
        assert result.session_dir == Path(folder)  # the session the run went to, still open
        assert Task.current_task() is task
    finally:
        task.close()
    assert read_session(folder).single_values["score"] == 0.5
