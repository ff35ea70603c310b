"""The command line reads only what a command needs: a journal's details are read when asked, as far as
asked, and a healthy session of any size is read whole, whatever the read cap of ClearML's event files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tracked import batch, read_session, tracked_eval
from tracked.cli import main


def _item(i: int, shift: float = 0.0) -> dict[str, object]:
    """Example i: an int id, a score, a text most examples have, a note some have."""
    fields: dict[str, object] = {"id": i, "score": (i % 5) / 4 + shift, "prediction": f"answer {i} " + "x" * (i % 9)}
    if i % 7 == 3:
        del fields["prediction"]
    if i % 4 == 0:
        fields["note"] = f"n{i}"
    return fields


def _run(name: str, n: int, shift: float = 0.0) -> tuple[Path, pd.DataFrame]:
    """A completed run of n examples (single examples, then a batch of 500), its session and examples."""

    @tracked_eval(verbose=False, task_name=name, flush_interval=0.01)
    def evaluate() -> Iterator[object]:
        for i in range(n - 500):
            yield _item(i, shift)
        rest = range(n - 500, n)
        yield batch(id=list(rest), score=[(i % 5) / 4 + shift for i in rest], prediction=[f"answer {i} " for i in rest])

    result = evaluate()
    assert result.session_dir is not None
    return result.session_dir, result.examples


def test_details_read_back_equal_by_examples_show_and_paired(capsys: pytest.CaptureFixture[str]) -> None:
    """A real run's details, streamed back: Session.examples() equals the run's own table (folder and zip),
    the ids alone come back as int64 without the texts, show prints the first examples' texts, and
    --paired pairs every example by id."""
    first, examples = _run("A", 3000)
    second, _ = _run("B", 3000, shift=0.25)
    for where in (first, Path(f"{first}.zip")):
        read = read_session(where)
        frame = read.examples()
        assert list(frame.columns) == list(examples.columns)
        for column in examples.columns:
            written = [None if pd.isna(v) else v for v in frame[column]]
            assert written == [None if pd.isna(v) else v for v in examples[column]], column
        ids = read.examples(details={"id"})
        assert list(ids.columns) == ["score", "id"]
        assert ids["id"].dtype == "int64"
        assert ids["id"].tolist() == list(range(3000))
        assert not read.problems
    assert main(["show", str(first)]) == 0
    out = capsys.readouterr().out
    assert "#0  score=0.0000  id=0  prediction=answer 0   note=n0" in out
    assert "#1  score=0.2500  id=1  prediction=answer 1 x" in out
    assert main(["compare", str(first), str(second), "--paired", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["paired"]
    assert row["n"] == 3000
    assert row["diff"] == pytest.approx(0.25)


def test_show_and_compare_read_no_further_than_they_need() -> None:
    """A line past the first examples made unreadable: show and compare never reach it (no problem, exit
    0); reading every example finds it, once, as a problem of the session."""
    session, _ = _run("lazy", 3000)
    details = session / "tracked" / "0" / "details.jsonl"
    lines = details.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 3
    lines[-2] = lines[-2][: len(lines[-2]) // 2]  # a cut line near the end
    details.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["show", str(session)]) == 0
    assert main(["compare", str(session)]) == 0
    read = read_session(session)
    assert not read.problems
    read.examples()
    read.examples()
    assert sum("unreadable line" in problem for problem in read.problems) == 1


def test_a_healthy_session_past_the_read_cap_is_read_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The read cap (TRACKED_MAX_READ_MB, here 3 MB) guards ClearML's event files against hostile ones; a
    run's journal past it (4 MB of scores, 10 MB of details) is read whole, not cut, by every command."""
    n, cap = 500_000, 3

    @tracked_eval(verbose=False, task_name="big")
    def evaluate() -> Iterator[object]:
        for start in range(0, n, 50_000):
            rows = range(start, start + 50_000)
            yield batch(score=[(i % 3) / 2 for i in rows], id=list(rows), prediction=[f"text {i}" for i in rows])

    result = evaluate()
    session = result.session_dir
    assert session is not None
    folder = session / "tracked" / "0"
    assert (session / "metrics.jsonl").stat().st_size < cap * 2**20  # ClearML's events: within the cap
    assert (folder / "details.jsonl").stat().st_size > 3 * cap * 2**20
    assert (folder / "m0.values").stat().st_size > cap * 2**20
    monkeypatch.setenv("TRACKED_MAX_READ_MB", str(cap))
    read = read_session(session)
    frame = read.examples()
    assert not read.problems
    assert len(frame) == n
    assert frame["prediction"].iloc[-1] == f"text {n - 1}"
    assert math.isclose(frame["score"].mean(), result["score"])
    capsys.readouterr()
    for command in (["show"], ["compare"], ["compare", "--paired"]):
        other = [] if command == ["show"] else [str(session)]
        assert main([*command, str(session), *other]) == 0, command
        assert "MB read" not in capsys.readouterr().err


def test_a_zipped_run_whose_scores_compress_far_is_read_not_refused() -> None:
    """A metric that is 1.0 on every example and a label repeated compress several hundred times in the
    session's zip: a healthy run, read whole (a size deflate cannot reach is still refused)."""
    n = 200_000

    @tracked_eval(verbose=False, task_name="constant")
    def evaluate() -> Iterator[object]:
        yield batch(acc=[1.0] * n, label=["positive"] * n)

    result = evaluate()
    read = read_session(f"{result.session_dir}.zip")
    assert not read.problems
    frame = read.examples()
    assert len(frame) == n
    assert frame["acc"].eq(1.0).all()
    assert frame["label"].eq("positive").all()


def test_lines_out_of_order_or_at_no_example_keep_each_examples_first_details() -> None:
    """Lines an edit appended (an example written again, one at a negative index, one past the count):
    each example keeps the details first written for it, and none lands on another example."""
    session, examples = _run("edited", 1000)
    details = session / "tracked" / "0" / "details.jsonl"
    edits = [
        '[-3, {"prediction": "moved"}]',
        '[5, {"prediction": "again"}]',
        '{"start": 998, "n": 4, "columns": {"prediction": ["w", "x", "y", "z"]}}',
    ]
    details.write_text(details.read_text(encoding="utf-8") + "\n".join(edits) + "\n", encoding="utf-8")
    state_path = session / "tracked" / "0" / "run.json"
    state = json.loads(state_path.read_text(encoding="utf-8"))
    state["details"]["bytes"] = details.stat().st_size
    state_path.write_text(json.dumps(state), encoding="utf-8")
    read = read_session(session)
    frame = read.examples()
    assert not read.problems
    written = [None if pd.isna(v) else v for v in frame["prediction"]]
    assert written == [None if pd.isna(v) else v for v in examples["prediction"]]
    assert read.journal is not None
    assert read.journal.first_details(3)[0]["prediction"] == "answer 0 "
