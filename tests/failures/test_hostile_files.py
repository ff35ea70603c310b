"""Hardening, round three: credentials in skipped values and task names; broken links among a glob's runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracked import read_session, tracked_eval
from tracked.cli import main

ACCESS = "AKTESTACCESSKEY0123456789"


def _all_text(root: Path) -> str:
    """Every file under root, as text (zips unpacked), and every path's name."""
    import zipfile

    chunks = [str(p) for p in root.rglob("*")]
    for path in root.rglob("*"):
        if path.is_file() and path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                chunks += [
                    *archive.namelist(),
                    *(archive.read(n).decode("utf-8", "replace") for n in archive.namelist()),
                ]
        elif path.is_file():
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_a_credential_in_a_skipped_value_or_a_task_name_is_written_nowhere(
    clearml_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's record of a skipped value and the task's name (task.json, folder names) redact a
    ClearML credential, as the warning does."""
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "sk-test-SECRET-VALUE-9876543210")
    monkeypatch.setenv("CLEARML_API_HOST", "http://127.0.0.1:9")

    class Token:
        """A value whose float fails, quoting a credential (an API client's error)."""

        def __float__(self) -> float:
            raise ValueError(f"token {ACCESS} expired")

        def __repr__(self) -> str:
            return f"Token({ACCESS})"

    @tracked_eval(offline=True, verbose=False, task_name=f"eval with {ACCESS}", project=f"p {ACCESS}")
    def evaluate() -> Iterator[object]:
        yield {"acc": 1.0}
        yield {"acc": Token()}  # skipped: its reason quotes the value and the error
        yield {"acc": 0.0}

    with pytest.warns(UserWarning, match="<redacted>"):
        result = evaluate()
    assert result["skipped_values"] == 1
    assert result["acc"] == 0.5
    written = _all_text(clearml_cache)
    assert ACCESS not in written
    session = read_session(result.session_dir)  # type: ignore[arg-type]
    assert session.name == "eval with <redacted>"
    assert session.project == "p <redacted>"


def test_a_broken_link_among_a_globs_runs_is_one_line_and_the_others_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tracked show "DIR/*"` with a dangling symlink among the sessions: one stderr line for it, the
    runs beside it shown, exit code 1."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for name in ("first", "second"):

        @tracked_eval(task_name=name, verbose=False)
        def evaluate() -> Iterator[float]:
            yield from (0.25, 0.75)

        session = evaluate().session_dir
        assert session is not None
        os.symlink(session, folder / name)
    os.symlink(tmp_path / "gone", folder / "broken")
    assert main(["show", str(folder / "*")]) == 1
    captured = capsys.readouterr()
    assert "run       first" in captured.out
    assert "run       second" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert "broken" in line


def _run(name: str = "hostile", n: int = 151, **options: object) -> Path:
    """A completed offline session of ``n`` examples (acc alternating 0/1, an id each); its folder."""

    @tracked_eval(task_name=name, verbose=False, **options)  # type: ignore[call-overload]
    def evaluate(dataset: list[int]) -> Iterator[dict[str, object]]:
        for i in dataset:
            yield {"acc": float(i % 2), "id": f"q{i}"}

    session = evaluate(list(range(n))).session_dir
    assert session is not None
    return Path(session)


def _state(session: Path) -> tuple[Path, dict[str, object]]:
    import json

    path = session / "tracked" / "0" / "run.json"
    return path, json.loads(path.read_text())


def _edit(session: Path, **changes: object) -> None:
    import json

    path, state = _state(session)
    state.update(changes)
    path.write_text(json.dumps(state))


def test_a_series_file_outside_the_session_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run.json naming ``../../x`` or an absolute path for a metric's values: never read, one line."""
    import numpy as np

    session = _run()
    outside = tmp_path / "outside"
    np.full(151, 7.0).astype("<f8").tofile(f"{outside}.values")
    _, state = _state(session)
    series = dict(state["series"])  # type: ignore[call-overload]
    for target in (str(outside), "../../../../outside"):
        series["acc"] = {**series["acc"], "file": target}
        _edit(session, status="running", series=series)  # interrupted: its values are the means shown
        read = read_session(session)
        assert "acc" not in read.journal.series  # type: ignore[union-attr]
        assert any("refused" in problem for problem in read.problems)
        assert 7.0 not in read.single_values.values()
        assert main(["show", str(session)]) == 1
        assert "refused" in capsys.readouterr().err


def test_a_fifo_in_place_of_a_journal_file_never_blocks_show(tmp_path: Path) -> None:
    """A FIFO where the values (or details) file should be: `tracked show` answers at once, one line."""
    import subprocess
    import sys

    session = _run()
    folder = session / "tracked" / "0"
    for name in ("m0.values", "details.jsonl"):
        (folder / name).unlink()
        os.mkfifo(folder / name)
    shown = subprocess.run(
        [sys.executable, "-m", "tracked", "show", str(session)], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 1
    assert "not a regular file" in shown.stderr


def test_a_linked_journal_folder_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`tracked/0` swapped for a link to another run's journal: refused, never shown under this name."""
    import shutil

    mine, other = _run("mine", 10), _run("other", 30)
    shutil.rmtree(mine / "tracked" / "0")
    os.symlink(other / "tracked" / "0", mine / "tracked" / "0")
    read = read_session(mine)
    assert read.journal is None
    assert read.name == "mine"
    assert any("is a link" in problem for problem in read.problems)


@pytest.mark.parametrize("claimed", [400, -5, 1e300, "many"])
def test_a_count_the_files_do_not_hold_is_not_believed(claimed: object, capsys: pytest.CaptureFixture[str]) -> None:
    """run.json claiming more examples than its files hold (or no count at all): the examples on disk
    are counted, one line says so, and resume continues after them, not after the claimed count."""
    session = _run(n=151)
    _edit(session, count=claimed, status="running")
    read = read_session(session)
    assert read.num_examples == 151
    assert read.status == "interrupted"
    assert any("its files hold 151" in problem for problem in read.problems)
    assert main(["show", str(session)]) == 1
    assert "151 examples" in capsys.readouterr().out


def test_resume_continues_after_the_examples_on_disk_not_the_count_claimed() -> None:
    """A resumable run whose run.json says 400 while 151 examples are on disk: the resumed run scores
    the other 49 of 200, and its means equal an uninterrupted run's."""

    crash_at: list[int] = [151]

    @tracked_eval(task_name="resumed", verbose=False, resume=True)
    def evaluate(dataset: list[int]) -> Iterator[dict[str, object]]:
        for i in dataset:
            if crash_at and i == crash_at[0]:
                raise RuntimeError("crashed")
            yield {"acc": float(i % 2), "id": f"q{i}"}

    with pytest.raises(RuntimeError, match="crashed"):
        evaluate(list(range(200)))
    (session,) = [p for p in (Path(os.environ["CLEARML_CACHE_DIR"]) / "offline").iterdir() if p.is_dir()]
    _edit(session, count=400, status="running")
    crash_at.clear()
    result = evaluate(list(range(200)))
    assert result["num_examples"] == 200
    assert result["acc"] == 0.5
    _, state = _state(result.session_dir)  # type: ignore[arg-type]
    assert state["resumed_from"] == str(session / "tracked" / "0")  # it did resume, after the 151 on disk


def test_merge_refuses_a_shard_that_has_not_ended(capsys: pytest.CaptureFixture[str]) -> None:
    """A shard still running, or interrupted, is not merged as if it were whole: one line, exit 1, no run."""
    shards = [_run("sharded", 20, shard=(i, 2)) for i in range(2)]
    _edit(shards[1], status="running")  # its lock is free: its process died
    offline = shards[0].parent
    before = set(offline.iterdir())
    assert main(["merge", *map(str, shards)]) == 1
    err = capsys.readouterr().err
    assert "shard 1/2 is interrupted" in err
    assert "not merged" in err
    assert set(offline.iterdir()) == before  # no merged session was made


def test_a_resumed_run_carries_the_earlier_examples_long_texts() -> None:
    """Details past 4,096 characters are kept whole in the journal's long-details.jsonl: after a resume,
    the new session holds every example's full text, those scored before the resume too."""
    import json

    crash_at: list[int] = [50]

    @tracked_eval(task_name="long texts", verbose=False, resume=True)
    def evaluate(dataset: list[int]) -> Iterator[dict[str, object]]:
        for i in dataset:
            if crash_at and i == crash_at[0]:
                raise RuntimeError("crashed")
            yield {"acc": float(i % 2), "answer": f"{i}:" + "x" * 5000}

    with pytest.raises(RuntimeError, match="crashed"):
        evaluate(list(range(100)))
    crash_at.clear()
    result = evaluate(list(range(100)))
    assert result["num_examples"] == 100
    lines = (result.session_dir / "tracked" / "0" / "long-details.jsonl").read_text().splitlines()  # type: ignore[operator]
    texts = {json.loads(line)[0]: json.loads(line)[2] for line in lines}
    assert sorted(texts) == list(range(100))
    assert all(texts[i] == f"{i}:" + "x" * 5000 for i in range(100))


def test_flipped_bytes_in_a_journals_values_are_found_and_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    """A byte flipped in m0.values (a bad disk, an edit): the block it is in (65,536 values) is reported
    damaged and left out of the means; every other value is read, and an intact journal has no problem."""
    import numpy as np

    n = 140_000
    values = np.random.default_rng(7).random(n)

    @tracked_eval(task_name="flipped", verbose=False)
    def evaluate() -> Iterator[float]:
        yield from values.tolist()

    session = evaluate().session_dir
    assert session is not None
    assert read_session(session).problems == []
    path = session / "tracked" / "0" / "m0.values"
    data = bytearray(path.read_bytes())
    data[(70_000 * 8) + 3] ^= 0xFF  # inside the second block
    path.write_bytes(bytes(data))
    read = read_session(session)
    assert any("damaged (checksum) at items 65,536-131,071" in p for p in read.problems)
    kept = np.concatenate([values[:65_536], values[131_072:]])
    assert read.journal.means()["score"] == pytest.approx(kept.mean(), rel=1e-12)  # type: ignore[union-attr]
    indices, _ = read.journal.series["score"]  # type: ignore[union-attr]
    assert len(indices) == n - 65_536
    assert main(["show", str(session)]) == 1
    assert "damaged" in capsys.readouterr().err


def _series_edit(field: str, value: object) -> object:
    """A run.json edit: a top-level field, or ``series.acc.<key>``, set to ``value``."""
    return (field, value)


RUN_JSON_EDITS = [
    ("series", None), ("series", 5), ("series", []), ("series.acc", 5), ("series.acc.size", None),
    ("series.acc.size", [1]), ("series.acc.size", 150.7), ("series.acc.dense_start", 2**70), ("details", None),
    ("details", []), ("details.bytes", None), ("details.bytes", -1), ("duration", "x"), ("duration", [1]),
    ("count", None), ("count", 2.5),
]  # fmt: skip


def _apply(session: Path, field: str, value: object) -> None:
    import json

    path, state = _state(session)
    target: dict[str, object] = state
    *parents, last = field.split(".")
    for part in parents:
        target = target[part]  # type: ignore[assignment]
    target[last] = value
    state["status"] = "running"  # interrupted: what is shown comes from the journal
    path.write_text(json.dumps(state))


@pytest.mark.parametrize(("field", "value"), RUN_JSON_EDITS)
def test_an_edited_run_json_is_shown_with_its_problem_never_a_traceback(
    field: str, value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any shape of an edited run.json: the session is read (what can be read of it) and shown with one
    line naming the damage; never a traceback, never the whole session refused."""
    session = _run(n=20)
    _apply(session, field, value)
    read = read_session(session)
    assert read.name == "hostile"
    assert main(["show", str(session)]) == 1
    captured = capsys.readouterr()
    assert "run       hostile" in captured.out
    assert "Traceback" not in captured.err
    assert "not a readable session" not in captured.err


@pytest.mark.parametrize(("field", "value"), [("series.acc", 5), ("duration", "x"), ("skipped", {"a": 5})])
def test_resume_over_a_damaged_journal_is_a_fresh_tracked_run(field: str, value: object) -> None:
    """The previous run's journal damaged: resume warns and starts a fresh run that is recorded (never an
    untracked one), and the next resume works again."""
    crash_at: list[int] = [10]

    @tracked_eval(task_name="damaged", verbose=False, resume=True)
    def evaluate(dataset: list[int]) -> Iterator[dict[str, object]]:
        for i in dataset:
            if crash_at and i == crash_at[0]:
                raise RuntimeError("crashed")
            yield {"acc": float(i % 2)}

    with pytest.raises(RuntimeError):
        evaluate(list(range(20)))
    (session,) = [p for p in (Path(os.environ["CLEARML_CACHE_DIR"]) / "offline").iterdir() if p.is_dir()]
    _apply(session, field, value)
    crash_at.clear()
    with pytest.warns(UserWarning, match="starting a fresh run"):
        result = evaluate(list(range(20)))
    assert result.session_dir is not None
    assert result["num_examples"] == 20
    assert result["acc"] == 0.5


@pytest.mark.parametrize("shard", ["ab", 5, [0, "x"]])
def test_merge_of_a_shard_with_an_edited_identity_is_one_line(
    shard: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shard whose run.json names no (index, count): not merged, one line, exit 1, no traceback."""
    shards = [_run("sharded", 10, shard=(i, 2)) for i in range(2)]
    _edit(shards[0], shard=shard, expected="x")
    assert main(["merge", *map(str, shards)]) == 1
    err = capsys.readouterr().err
    assert "not merged" in err
    assert "Traceback" not in err


DENSE_EDITS = {  # series.<metric>.<key> = value, and values appended to (+) or cut from (-) its file
    "shrunk": ("acc", {"size": 10}, 0),
    "shrunk-with-its-file": ("acc", {"size": 10}, -10),
    "grown-with-its-file": ("acc", {"size": 25}, +5),
    "shifted-within-the-run": ("late", {"dense_start": 8}, 0),
    "shifted-before-the-first-example": ("acc", {"dense_start": -3}, 0),
    "shifted-past-the-count": ("late", {"dense_start": 12}, 0),
}


@pytest.mark.parametrize("edit", list(DENSE_EDITS), ids=list(DENSE_EDITS))
def test_resume_over_a_dense_metric_shrunk_grown_or_shifted_is_a_fresh_run(
    edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A metric's values in run.json (and its file) edited to hold fewer or more values than were written,
    or moved to other examples: they would be read as other examples' values. Resume refuses with one
    warning naming the metric and starts a fresh run, whose means are those of an uninterrupted run; show
    names the damage."""
    import json

    import numpy as np

    metric, changes, values = DENSE_EDITS[edit]
    crash_at: list[int] = [20]

    @tracked_eval(task_name="dense", verbose=False, resume=True)
    def evaluate(dataset: list[int]) -> Iterator[dict[str, object]]:
        for i in dataset:
            if crash_at and i == crash_at[0]:
                raise RuntimeError("crashed")
            yield {"acc": float(i % 3 == 0), **({"late": i / 10} if 5 <= i < 15 else {})}

    with pytest.raises(RuntimeError, match="crashed"):
        evaluate(list(range(40)))
    (session,) = [p for p in (Path(os.environ["CLEARML_CACHE_DIR"]) / "offline").iterdir() if p.is_dir()]
    assert read_session(session).problems == []
    path, state = _state(session)
    entry = state["series"][metric]  # type: ignore[index]
    entry.update(changes)
    path.write_text(json.dumps(state))
    data = session / "tracked" / "0" / f"{entry['file']}.values"
    if values > 0:
        data.write_bytes(data.read_bytes() + np.arange(values, dtype="<f8").tobytes())
    elif values < 0:
        data.write_bytes(data.read_bytes()[: values * 8])
    problems = read_session(session).problems
    assert any(metric in problem for problem in problems), problems
    assert main(["show", str(session)]) == 1  # a problem found at run time: exit 1
    capsys.readouterr()
    crash_at.clear()
    with pytest.warns(UserWarning, match=f"cannot resume dense at example 20 .*{metric}.*starting a fresh run"):
        result = evaluate(list(range(40)))
    assert result["num_examples"] == 40
    assert result["acc"] == pytest.approx(np.mean([float(i % 3 == 0) for i in range(40)]), rel=1e-12)
    assert result["late"] == pytest.approx(np.mean([i / 10 for i in range(5, 15)]), rel=1e-12)
