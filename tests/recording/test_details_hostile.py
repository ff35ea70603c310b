"""Hostile inputs for details kept in columns: what the journal (folder and zip) and the examples artifact
hold must be what was yielded, however the evaluation is driven."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tracked import read_session, tracked_eval


def artifact(session: Any) -> pd.DataFrame:
    task = json.loads((Path(session) / "task.json").read_text())
    (saved,) = [a for a in task["execution"]["artifacts"] if a["key"] == "examples"]
    frame: pd.DataFrame = pd.read_parquet(saved["uri"])
    return frame


def copies(result: Any) -> dict[str, pd.DataFrame]:
    """The examples as the result, the journal (folder and zip) and the artifact hold them."""
    folder = result.session_dir
    assert folder is not None
    return {
        "result": result.examples,
        "folder": read_session(folder).examples(),
        "zip": read_session(Path(f"{folder}.zip")).examples(),
        "artifact": artifact(folder),
    }


def column(frame: pd.DataFrame, name: str) -> list[Any]:
    return [None if pd.isna(v) else v for v in frame[name].tolist()]


class SlowFields(Mapping[str, Any]):
    """An example whose fields take a while to come (a lazily computed mapping): the live thread looks at
    the run while the example is halfway recorded."""

    def __init__(self, fields: dict[str, Any], pause: float) -> None:
        self._fields, self._pause = fields, pause

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        for key in self._fields:
            if key == "b":
                time.sleep(self._pause)
            yield key

    def __len__(self) -> int:
        return len(self._fields)


def test_a_lazy_generator_driven_from_another_thread_keeps_every_detail(clearml_cache: Path) -> None:
    """A lazy evaluation started in one thread and iterated in another (a worker, an event loop's thread):
    the live thread must not take an example halfway recorded, or its later details never reach the journal."""

    @tracked_eval(lazy=True, verbose=False, flush_interval=0.01)
    def evaluate() -> Iterator[Any]:
        for i in range(12):
            fields = {"acc": 1.0, "a": f"a{i}", "b": f"b{i}", "c": f"c{i}"}
            yield SlowFields(fields, 0.3) if i in (4, 9) else fields

    gen = evaluate()
    next(gen)  # the run starts here, in this thread
    worker = threading.Thread(target=lambda: [None for _ in gen])
    worker.start()
    worker.join(timeout=60)
    result = gen.result  # type: ignore[attr-defined]
    assert result is not None
    for where, frame in copies(result).items():
        for name in "abc":
            assert column(frame, name) == [f"{name}{i}" for i in range(12)], (where, name)


@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")
def test_a_field_per_example_keeps_every_journal_line_readable(clearml_cache: Path) -> None:
    """``{f"output_{id}": text}`` names a field per example: the examples handed over together must not be
    written as one block of every field (a line of 1,024 examples x 3,000 fields, mostly nulls, is past the
    reader's 16 MB line cap and is skipped: the details are lost from the journal, the zip and a resume)."""
    n = 1400

    @tracked_eval(verbose=False, flush_interval=60)  # one look at the run: every example handed over at once
    def evaluate() -> Iterator[Any]:
        for i in range(n):
            yield {"acc": 1.0, f"output_{i}": f"o{i}", f"input_{i}": f"i{i}"}

    result = evaluate()
    for where, frame in copies(result).items():
        if where == "artifact":
            continue  # (the artifact is made from memory, as the result)
        for i in (0, 1023, 1024, n - 1):
            assert frame[f"output_{i}"].iloc[i] == f"o{i}", (where, i)
            assert frame[f"input_{i}"].iloc[i] == f"i{i}", (where, i)
    details = Path(result.session_dir) / "tracked" / "0" / "details.jsonl"
    assert max(map(len, details.read_bytes().splitlines())) < 16 * 2**20


def test_a_process_forked_while_a_task_closes_restores_clearml_zip(clearml_cache: Path, tmp_path: Path) -> None:
    """A fork while another thread is closing a task (its session being zipped): the child has no close
    under way, so its own runs must leave ``clearml.task.ZipFile`` as ClearML's, not patched for good."""
    import os
    import zipfile

    import clearml.task

    import tracked.sinks.clearml.archive as archive

    inside, leave = threading.Event(), threading.Event()

    def closing() -> None:  # what the ClearML sink does around ``task.close()``, held open
        with archive.quick_zip():
            inside.set()
            leave.wait(60)

    closer = threading.Thread(target=closing)
    closer.start()
    assert inside.wait(60)
    report = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # the child: one run of its own, then what its ClearML module names
        try:

            @tracked_eval(verbose=False)
            def evaluate() -> Iterator[Any]:
                yield {"acc": 1.0, "answer": "x"}

            result = evaluate()
            with zipfile.ZipFile(f"{result.session_dir}.zip") as zipped:
                whole = zipped.testzip() is None
            report.write_text(f"{clearml.task.ZipFile is zipfile.ZipFile} {archive._closing} {whole}")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    leave.set()
    closer.join(60)
    assert report.read_text() == "True 0 True"
    assert clearml.task.ZipFile is zipfile.ZipFile
    assert archive._closing == 0


def test_another_runs_example_being_recorded_is_not_this_runs() -> None:
    """``adding`` looks at every thread, but only at this run's examples: a run ended by a signal while
    another run's thread is halfway through an example keeps its own last, whole, example."""
    from tracked.common.options import Settings
    from tracked.recording.recorder import Recorder

    ours, theirs = Recorder(Settings(), "ours"), Recorder(Settings(), "theirs")
    ours.add({"acc": 1.0, "answer": "whole"})
    started, done = threading.Event(), threading.Event()

    class Halfway(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            return {"acc": 1.0, "answer": "x"}[key]

        def __iter__(self) -> Iterator[str]:
            yield "acc"
            started.set()
            done.wait(30)
            yield "answer"

        def __len__(self) -> int:
            return 2

    worker = threading.Thread(target=theirs.add, args=(Halfway(),))
    worker.start()
    try:
        assert started.wait(30)
        assert theirs.adding()
        assert not ours.adding()
    finally:
        done.set()
        worker.join(30)
    assert not theirs.adding()
    assert theirs.details.first(1) == {0: {"answer": "x"}}
