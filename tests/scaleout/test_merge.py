"""Shards run apart (Slurm arrays, Ray tasks, a process pool), merged into one run afterwards."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tracked import EvalResult, MergeError, merge, read_session, tracked_eval

N, SHARDS = 103, 4

SHARD_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from tracked import tracked_eval

    index, count, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    data = [{"id": f"q{i}", "correct": float(i % 3 == 0), "loss": i / 7, "answer": f"a{i}"} for i in range(103)]
    size = -(-len(data) // count)

    @tracked_eval(verbose=False, task_name=name, shard=(index, count))
    def evaluate(dataset):
        yield from dataset

    result = evaluate(data[index * size : (index + 1) * size])
    print(json.dumps({"session": str(result.session_dir)}))
    """
)


def data() -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "correct": float(i % 3 == 0), "loss": i / 7, "answer": f"a{i}"} for i in range(N)]


@tracked_eval(verbose=False, task_name="sharded")
def unsharded(dataset: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from dataset


def shard_sessions(tmp_path: Path, shards: list[tuple[int, int]], name: str = "sharded") -> list[str]:
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT, encoding="utf-8")
    sessions = []
    for index, count in shards:  # separate processes, as an array job's tasks are
        done = subprocess.run(
            [sys.executable, str(script), str(index), str(count), name], capture_output=True, text=True,
            timeout=120, check=True, env={**os.environ},
        )  # fmt: skip
        sessions.append(json.loads(done.stdout.strip().splitlines()[-1])["session"])
    return sessions


def tracked_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracked", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_four_shards_merged_equal_one_unsharded_run(tmp_path: Path, clearml_cache: Path) -> None:
    sessions = shard_sessions(tmp_path, [(i, SHARDS) for i in range(SHARDS)])
    done = tracked_cli("merge", *reversed(sessions), "-o", str(tmp_path / "merged.zip"))  # any order
    assert done.returncode == 0, done.stderr
    assert f"merged {SHARDS} shards, {N} examples" in done.stdout
    merged = read_session(tmp_path / "merged.zip")
    one = unsharded(data())
    for name in ("correct", "loss"):
        assert merged.single_values[name] == one[name]  # exactly
    assert merged.single_values["num_examples"] == N
    assert merged.single_values["num_shards"] == SHARDS
    pd.testing.assert_frame_equal(merged.examples(), one.examples, check_dtype=False)
    assert merged.statistics["loss"]["stderr"] == pytest.approx(one.stats.loc["loss", "stderr"])
    assert [i for i, _ in merged.scalars["Training Progress"]["correct"]] == list(range(N))


@pytest.mark.parametrize("case", ["missing", "duplicated", "other evaluation"])
def test_bad_shard_sets_are_refused_with_exit_code_1(tmp_path: Path, clearml_cache: Path, case: str) -> None:
    sessions = shard_sessions(tmp_path, [(0, 3), (1, 3), (2, 3)])
    if case == "missing":
        given, expected = sessions[:2], "shards missing: 2/3"
    elif case == "duplicated":
        given, expected = [*sessions, sessions[1]], "shard 1/3 is given twice"
    else:
        other = shard_sessions(tmp_path, [(2, 3)], name="another evaluation")
        given, expected = [*sessions[:2], *other], "shards of different evaluations"
    done = tracked_cli("merge", *given)
    assert done.returncode == 1
    assert expected in done.stderr
    assert "merged" not in done.stdout


def run_shard(index: int) -> EvalResult:
    """A shard in a worker process (as a Ray task or a pool worker runs it); its EvalResult comes back."""

    @tracked_eval(verbose=False, task_name="pooled", shard=(index, SHARDS))
    def evaluate(dataset: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from dataset

    size = -(-N // SHARDS)
    return evaluate(data()[index * size : (index + 1) * size])


def test_results_returned_by_workers_merge_in_python(clearml_cache: Path) -> None:
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(run_shard, range(SHARDS)))
    merged = merge(results, verbose=False)
    one = unsharded(data())
    assert merged["correct"] == one["correct"]
    assert merged["num_examples"] == N
    assert merged.session_dir is not None
    with pytest.raises(MergeError, match="shards missing: 3/4"):
        merge(results[:3], verbose=False)


def test_a_decorated_evaluation_decorated_again_as_a_shard_is_one_run(clearml_cache: Path) -> None:
    """The README's Ray pattern: ``tracked_eval(shard=(i, n))(evaluate)`` on an already decorated evaluate."""

    @tracked_eval(verbose=False, task_name="twice")
    def evaluate(dataset: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from dataset

    size = -(-N // SHARDS)
    results = [tracked_eval(shard=(i, SHARDS))(evaluate)(data()[i * size : (i + 1) * size]) for i in range(SHARDS)]
    assert len(results[0].examples) == size  # the examples are there: one run, not a run around a run
    merged = merge(results, verbose=False)
    one = unsharded(data())
    assert merged["correct"] == one["correct"]
    assert merged["num_examples"] == N
    assert merged["dataset_num_eval"] == N


def test_merge_to_a_missing_folder_is_refused_before_merging(tmp_path: Path, clearml_cache: Path) -> None:
    sessions = shard_sessions(tmp_path, [(0, 2), (1, 2)])
    done = tracked_cli("merge", *sessions, f"{sessions[0]}.zip", "-o", str(tmp_path / "no" / "such" / "m.zip"))
    assert done.returncode == 1
    assert "is not a folder (-o)" in done.stderr
    assert "merged" not in done.stdout
    done = tracked_cli("merge", *sessions, f"{sessions[0]}.zip")  # a folder and its zip: one shard, not two
    assert done.returncode == 0, done.stderr


def shards_in_process(name: str, count: int) -> None:
    @tracked_eval(verbose=False, task_name=name)
    def evaluate(dataset: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from dataset

    size = -(-N // count)
    for i in range(count):
        tracked_eval(shard=(i, count))(evaluate)(data()[i * size : (i + 1) * size])


def test_merge_over_the_whole_cache_merges_each_evaluation(tmp_path: Path, clearml_cache: Path) -> None:
    """The recipe ``tracked merge "<cache>/offline/*/"`` with other runs in the cache: each complete evaluation
    is merged, every other run is named as skipped, and ``--task NAME`` picks one evaluation."""
    shards_in_process("first", 2)
    shards_in_process("second", 3)
    unsharded(data()[:5])
    every = str(clearml_cache / "offline" / "*" / "")
    done = tracked_cli("merge", every, "-o", str(tmp_path / "merged.zip"))
    assert done.returncode == 1
    assert "choose one with --task" in done.stderr
    assert "merged" not in done.stdout

    done = tracked_cli("merge", every)
    assert done.returncode == 0, done.stderr
    assert f"merged 2 shards, {N} examples of first" in done.stdout
    assert f"merged 3 shards, {N} examples of second" in done.stdout
    (skipped,) = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert "not a shard" in skipped

    done = tracked_cli("merge", every, "--task", "second", "-o", str(tmp_path / "second.zip"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("merged") == 1
    assert f"merged 3 shards, {N} examples of second" in done.stdout
    assert done.stderr.count("task 'first', not 'second'") == 3  # its two shards, and the run they were merged into
    merged = read_session(tmp_path / "second.zip")
    assert merged.single_values["num_examples"] == N
    assert merged.single_values["num_shards"] == 3
