"""Session files anyone can edit: malformed JSON, lying journals, zip bombs, oversized files, a bad read limit.
The CLI says one line for each and still shows the good runs beside them; memory stays bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracked import read_session, tracked_eval

SCALAR = '[{"type": "training_stats_scalar", "metric": "T", "variant": "v", "iter": ITER, "value": VALUE}]'


@pytest.mark.parametrize(
    ("what", "task_json", "metrics_line"),
    [
        ("nested JSON", None, "[" * 100_000 + "]" * 100_000),
        ("hyperparams as a list", '{"id": "x", "name": "n", "hyperparams": []}', None),
        ("a string where a mapping belongs", '{"id": "x", "name": "n", "hyperparams": "oops"}', None),
        ("iter 1e999", None, SCALAR.replace("ITER", "1e999").replace("VALUE", "1")),
        ("inf value", None, SCALAR.replace("ITER", "1").replace("VALUE", "Infinity")),
        ("task.json not a mapping", "[1, 2]", None),
    ],
)  # fmt: skip
def test_malformed_sessions_are_one_line_each_and_good_runs_still_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, task_json: str | None, metrics_line: str | None
) -> None:
    """Each hostile session: one stderr line (exit 1) or shown as far as it reads; the good run beside it is shown."""
    from tracked.cli import main

    @tracked_eval(verbose=False, task_name="good")
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    good = evaluate([1.0, 2.0]).session_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "task.json").write_text(task_json or '{"id": "bad", "name": "bad"}', encoding="utf-8")
    if metrics_line is not None:
        (bad / "metrics.jsonl").write_text(metrics_line + "\n", encoding="utf-8")
    capsys.readouterr()
    for command in ("show", "compare"):
        code = main([command, str(bad), str(good)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, what
        assert "good" in out, what
        assert code in (0, 1), what


def test_a_path_that_does_not_exist_never_waits_for_a_configured_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server configured but not answering: a missing local path is one line at once; a task id, one line."""
    from tracked.cli import main

    monkeypatch.setenv("CLEARML_API_HOST", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "A" * 20)
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "S" * 30)
    assert main(["show", "/no/such/path"]) == 1
    assert main(["compare", "./typo.zip"]) == 1
    assert main(["show", "0123456789abcdef"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 3
    assert "did not answer" in err


# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would count the forking pytest process.
PEAK = (
    "import atexit, re, sys; from tracked.cli import main; atexit.register(lambda: print('PEAK_MB', "
    "int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024, file=sys.stderr)); "
    "sys.exit(main(sys.argv[1:]))"
)


def _cli_in_a_child(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """``tracked ARGS`` in a fresh process: exit code, stdout, stderr and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    peak = int(done.stderr.rsplit("PEAK_MB", 1)[1])
    return done.returncode, done.stdout, done.stderr, peak


def test_hostile_sizes_are_refused_or_capped_and_the_good_run_still_shown(tmp_path: Path) -> None:
    """A zip bomb is one line; an oversized file is read up to the cap; a 64 MB line is skipped; RSS stays small."""
    import zipfile

    @tracked_eval(verbose=False, task_name="good")
    def evaluate(dataset: list[float]) -> Iterator[float]:
        yield from dataset

    good = str(evaluate([1.0, 2.0]).session_dir)
    task_json = '{"id": "bad", "name": "bad"}'
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("s/task.json", task_json)
        archive.writestr("s/metrics.jsonl", b" " * (256 * 2**20))
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "task.json").write_text(task_json)
    with (huge / "metrics.jsonl").open("w") as file:
        file.write("[" + " " * (64 * 2**20) + "]\n")  # one 64 MB line
        line = SCALAR.replace("ITER", "1").replace("VALUE", "0.5") + "\n"
        file.write(line * (12 * 2**20 // len(line)))  # 12 MB of ordinary lines

    code, out, err, _ = _cli_in_a_child(["show", str(bomb), good])
    assert code == 1
    assert "bomb.zip: refused, s/metrics.jsonl would expand" in err
    assert "good" in out
    code, out, err, peak = _cli_in_a_child(["show", str(huge), good], env={"TRACKED_MAX_READ_MB": "8"})
    assert code == 1
    assert "line 1: longer than 16 MB, skipped" in err
    assert "only its first 8 MB read" in err
    assert "good" in out
    assert "Traceback" not in err
    _, _, _, baseline = _cli_in_a_child(["show", good])
    assert peak < baseline + 64, (peak, baseline)  # the 64 MB line and the 76 MB file were never held whole


def test_a_journal_with_lying_batch_lines_reads_without_crashing(tmp_path: Path, clearml_cache: Path) -> None:
    """Overlapping or negative batch blocks in details.jsonl: each a problem line; the examples still read."""
    from tracked import batch

    @tracked_eval(verbose=False, task_name="lying")
    def evaluate() -> Iterator[object]:
        yield batch(score=[1.0, 2.0, 3.0, 4.0], answer=["a", "b", "c", "d"])

    folder = evaluate().session_dir
    assert folder is not None
    details = folder / "tracked" / "0" / "details.jsonl"
    lines = [
        '{"start": 2, "n": 3, "columns": {"answer": ["x", "y", "z"]}}',
        '{"start": -3, "n": 1, "columns": {"answer": ["w"]}}',
        '{"start": 0, "n": 9, "columns": {"answer": ["v"]}}',
    ]
    details.write_text(details.read_text(encoding="utf-8") + "\n".join(lines) + "\n", encoding="utf-8")
    state = json.loads((folder / "tracked" / "0" / "run.json").read_text())
    state["details"]["bytes"] = details.stat().st_size
    (folder / "tracked" / "0" / "run.json").write_text(json.dumps(state))
    session = read_session(folder)
    assert session.examples()["answer"].tolist() == ["a", "b", "c", "d"]  # the first details of each example
    assert sum("unreadable line" in p for p in session.problems) == 2


def test_a_malformed_read_limit_is_one_warning_and_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracked.store.session_files import read_limit

    for raw in ("abc", "0", "-1", "nan"):
        monkeypatch.setenv("TRACKED_MAX_READ_MB", raw)
        with pytest.warns(UserWarning, match="TRACKED_MAX_READ_MB"):
            assert read_limit() == 256 * 2**20
