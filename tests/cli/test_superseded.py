"""A run that another run resumed says so in ``tracked show``, and comparisons leave it out by default."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracked import read_session, tracked_eval
from tracked.cli import main


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def resumed_pair(cache: Path) -> tuple[Path, Path]:
    """A run that failed at example 5, and the run that resumed it to the end: (partial, whole)."""
    fail = [True]

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05, task_name="resumable")
    def evaluate(dataset: list[int]) -> Iterator[dict[str, float]]:
        for x in dataset:
            if x == 5 and fail[0]:
                raise RuntimeError("crash")
            yield {"acc": float(x % 2)}

    with pytest.raises(RuntimeError):
        evaluate(list(range(20)))
    (partial,) = cache.glob("offline/*/")
    fail[0] = False
    whole = evaluate(list(range(20))).session_dir
    assert whole is not None
    return partial, Path(whole)


def test_show_says_which_run_resumed_it(clearml_cache: Path) -> None:
    """show on the failed part: its status, then 'resumed by <the session that continued it>'."""
    partial, whole = resumed_pair(clearml_cache)
    assert read_session(partial).resumed_by == str(whole)
    assert read_session(partial).superseded
    assert not read_session(whole).superseded
    code, out, err = cli("show", str(partial))
    assert code == 0, err
    (status,) = [line for line in out.splitlines() if line.startswith("status")]
    assert status.startswith("status    failed")
    assert f"resumed by {whole}" in status


def test_compare_leaves_superseded_parts_out(clearml_cache: Path) -> None:
    """compare over the whole cache: only the whole run, one note naming the part; the flag keeps both."""
    partial, whole = resumed_pair(clearml_cache)
    every = str(clearml_cache / "offline" / "*" / "")
    code, out, err = cli("compare", every, "--format", "csv")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 2  # the header and one run
    assert ",failed," not in out  # csv: the status is a column of its own
    assert err.count("left out") == 1
    assert str(partial) in err
    assert f"resumed by {whole}" in err
    code, out, err = cli("compare", every, "--format", "csv", "--include-superseded")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3
    assert ",failed," in out
    assert err == ""
