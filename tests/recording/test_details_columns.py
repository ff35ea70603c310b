"""Single examples' details are kept in columns (no object per example) and handed to the journal a
block at a time: every way a field can come and go reads back as it was yielded, from the result, the
session's journal (folder and zip) and the examples artifact."""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tracked.sinks.clearml.archive as archive
from tracked import batch, read_session, tracked_eval


def artifact(session: Any) -> pd.DataFrame:
    task = json.loads((Path(session) / "task.json").read_text())
    (saved,) = [a for a in task["execution"]["artifacts"] if a["key"] == "examples"]
    frame: pd.DataFrame = pd.read_parquet(saved["uri"])
    return frame


def copies(result: Any) -> list[pd.DataFrame]:
    """The examples as the result, the journal (folder and zip) and the artifact hold them."""
    folder = result.session_dir
    assert folder is not None
    return [
        result.examples,
        read_session(folder).examples(),
        read_session(Path(f"{folder}.zip")).examples(),
        artifact(folder),
    ]


def column(frame: pd.DataFrame, name: str) -> list[Any]:
    return [None if pd.isna(v) else v for v in frame[name].tolist()]


def test_fields_that_come_go_and_change_type_read_back_as_yielded(clearml_cache: Path) -> None:
    """Labels (ints, then a text among them), texts on some examples only, a batch between single examples,
    rare details (handed over as rows) and dense ones (as blocks), over many small flushes."""

    def item(i: int) -> dict[str, Any]:
        fields: dict[str, Any] = {"acc": float(i % 2), "label": i % 3}
        if i == 700:
            fields["label"] = "unknown"  # the field becomes text from here on, everywhere
        if i % 3 == 0:
            fields["answer"] = f"a{i}"
        if i % 97 == 0:
            fields["note"] = f"n{i}"  # rare: fewer than one example in eight
        return fields

    @tracked_eval(verbose=False, flush_interval=0.005, details=["label"])
    def evaluate() -> Iterator[Any]:
        for i in range(1000):
            yield item(i)
        yield batch(acc=[1.0, 0.0], answer=["b0", "b1"])
        for i in range(1002, 1500):
            yield item(i)

    result = evaluate()
    items = {i: item(i) for i in [*range(1000), *range(1002, 1500)]}
    answers = (
        [items[i].get("answer") for i in range(1000)]
        + ["b0", "b1"]
        + [items[i].get("answer") for i in range(1002, 1500)]
    )
    labels = [None if i in (1000, 1001) else str(items[i]["label"]) for i in range(1500)]
    notes = [None if i in (1000, 1001) else items[i].get("note") for i in range(1500)]
    for frame in copies(result):
        assert len(frame) == 1500
        assert column(frame, "answer") == answers
        assert [None if v is None else str(v) for v in column(frame, "label")] == labels
        assert column(frame, "note") == notes


def test_a_key_given_twice_keeps_the_later_value(clearml_cache: Path) -> None:
    """``{1: ..., "1": ...}`` names one field twice: the later value is kept, as a dict would keep it."""

    @tracked_eval(verbose=False, details=["1"])
    def evaluate() -> Iterator[Any]:
        for i in range(50):
            yield {"acc": 1.0, "1": f"s{i}", 1: f"i{i}"} if i % 2 else {"acc": 1.0, 1: f"i{i}", "1": f"s{i}"}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate()
    expected = [f"i{i}" if i % 2 else f"s{i}" for i in range(50)]
    for frame in copies(result):
        assert column(frame, "1") == expected


def test_an_integer_beyond_float_range_in_a_label_is_skipped_as_before(clearml_cache: Path) -> None:
    """The fast path for known labels takes no integer ``as_number`` would refuse: it is skipped, once warned."""

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        for i in range(20):
            yield {"acc": 1.0, "label": 10**400 if i == 7 else i}

    with pytest.warns(UserWarning, match=r"example 7, field 'label': integer .* beyond float range"):
        result = evaluate()
    assert column(result.examples, "label")[6:9] == [6, None, 8]


def test_the_session_zip_stores_the_journal_and_restores_clearml(clearml_cache: Path) -> None:
    """The zip ClearML writes at close stores the journal and compressed files, deflates the rest, reads
    back whole; ClearML's module names ``zipfile.ZipFile`` again once the task is closed."""
    import clearml.task

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        for i in range(300):
            yield {"acc": (i % 7) / 7, "answer": f"text {i}"}

    result = evaluate()
    assert clearml.task.ZipFile is zipfile.ZipFile
    assert archive._closing == 0
    folder = result.session_dir
    with zipfile.ZipFile(f"{folder}.zip") as zipped:
        kinds = {info.filename: info.compress_type for info in zipped.infolist()}
        for info in zipped.infolist():  # every member whole
            assert zipped.read(info) == (folder / info.filename).read_bytes()
    journal = [name for name in kinds if name.startswith("tracked/")]
    assert any(name.endswith("details.jsonl") for name in journal)
    assert all(kinds[name] == zipfile.ZIP_STORED for name in journal)
    assert all(kinds[name] == zipfile.ZIP_STORED for name in kinds if name.endswith(".parquet"))
    assert kinds["metrics.jsonl"] == zipfile.ZIP_DEFLATED
    assert read_session(Path(f"{folder}.zip")).examples()["answer"].tolist() == [f"text {i}" for i in range(300)]


def test_a_patched_clearml_zip_is_left_alone(clearml_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ClearML's module names another ZipFile (a version that changed, someone's patch), it is kept."""
    import clearml.task

    class Theirs(zipfile.ZipFile):
        pass

    monkeypatch.setattr(clearml.task, "ZipFile", Theirs)

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield {"acc": 1.0, "answer": "x"}

    result = evaluate()
    assert clearml.task.ZipFile is Theirs
    with zipfile.ZipFile(f"{result.session_dir}.zip") as zipped:
        assert {info.compress_type for info in zipped.infolist()} == {zipfile.ZIP_DEFLATED}


def test_a_disk_full_while_zipping_keeps_the_result_and_the_folder(
    clearml_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up while ClearML zips the session: the caller still gets the result, the session
    folder (journal included) reads back whole, and ClearML's module names ``zipfile.ZipFile`` again."""
    import errno

    import clearml.task

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.QuickZip, "write", full)

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        for i in range(100):
            yield {"acc": (i % 3) / 3, "answer": f"text {i}"}

    result = evaluate()
    assert result.metrics["num_examples"] == 100
    assert clearml.task.ZipFile is zipfile.ZipFile
    assert archive._closing == 0
    assert read_session(result.session_dir).examples()["answer"].tolist() == [f"text {i}" for i in range(100)]
