"""The session reader: folders, zips, and what is not a session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tracked import SessionError, read_session, tracked_eval


@tracked_eval
def two() -> list[float]:
    return {"accuracy": 0.5}  # type: ignore[return-value]


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist names itself in the error."""
    with pytest.raises(SessionError, match="no such file"):
        read_session(tmp_path / "nope")


def test_folder_that_is_not_a_session(tmp_path: Path) -> None:
    """A folder without task.json is not a session."""
    with pytest.raises(SessionError, match="not an offline ClearML session"):
        read_session(tmp_path)


def test_corrupt_zip(tmp_path: Path) -> None:
    """A file that is not a zip is reported as such."""
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SessionError, match="not a readable session zip"):
        read_session(bad)


def test_truncated_metrics_file_keeps_what_is_readable() -> None:
    """A half-written last line (a crash mid-write) is noted; earlier batches are still read."""
    folder = two().session_dir
    assert folder is not None
    metrics = folder / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '[{"type": "training_stats_scalar", "metr', encoding="utf-8")
    session = read_session(folder)
    assert session.single_values["accuracy"] == 0.5
    assert len(session.problems) == 1
    assert "metrics.jsonl" in session.problems[0]


def test_hyperparameters_and_status_are_read(tmp_path: Path) -> None:
    """task.json's properties give the status; other sessions read as 'unknown'."""
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps({"id": "offline-1", "name": "n"}), encoding="utf-8")
    session = read_session(folder)
    assert session.status == "unknown"
    assert session.id == "offline-1"
    assert session.scalars == {}
    assert session.console == ""


def test_the_examples_of_a_completed_run_read_back_without_unpickling(clearml_cache: Path) -> None:
    """read_session(...).examples(): the per-example table from the session's journal, folder or zip."""

    @tracked_eval(verbose=False)
    def evaluate(n: int) -> Iterator[dict[str, object]]:
        for i in range(n):
            yield {"correct": float(i % 2), "loss": i / 10, "prediction": f"p{i}"}

    result = evaluate(25)
    assert result.session_dir is not None
    for where in (result.session_dir, Path(f"{result.session_dir}.zip")):
        examples = read_session(where).examples()
        assert list(examples.columns) == ["correct", "loss", "prediction"]
        assert examples["correct"].tolist() == result.examples["correct"].tolist()
        assert examples["prediction"].tolist() == [f"p{i}" for i in range(25)]


def test_details_of_single_examples_read_back_as_they_were_yielded(clearml_cache: Path) -> None:
    """The journal writes a run of consecutive examples' details as one line: gaps, fields some examples
    lack, a lone example and runs longer than a line all read back as yielded."""

    def item(i: int) -> dict[str, object]:
        fields: dict[str, object] = {"acc": float(i % 2)}
        if i % 7 != 3 and not 1500 <= i < 1510 and i != 1512:  # gaps, and example 1511 alone between two
            fields["prediction"] = f"p{i}"
        if i % 5 == 0:
            fields["note"] = f"n{i}"
        return fields

    @tracked_eval(verbose=False, flush_interval=0.01)
    def evaluate(n: int) -> Iterator[dict[str, object]]:
        for i in range(n):
            yield item(i)

    result = evaluate(3000)
    assert result.session_dir is not None
    examples = read_session(result.session_dir).examples()
    for name in ("prediction", "note"):
        written = [None if pd.isna(text) else text for text in examples[name]]
        assert written == [item(i).get(name) for i in range(3000)]
        assert written == [None if pd.isna(text) else text for text in result.examples[name]]
