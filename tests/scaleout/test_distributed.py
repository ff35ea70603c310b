"""torch.distributed: every rank calls the evaluation; the ranks' examples make one run, reported by rank 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import FOLDER, ROOT

from tracked import read_session, tracked_eval


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(ranks: int, cache: Path, **env: str) -> dict[int, list[str]]:
    """``torchrun --nproc_per_node=RANKS tests/support/spmd_evaluation.py``: each rank's line, split."""
    out = cache / "ranks"
    out.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", f"--master_port={free_port()}",
         str(FOLDER / "spmd_evaluation.py")],
        capture_output=True, text=True, timeout=240, check=False,
        # The script section's detection (tests/recording/test_reproducible.py) can outlast its 2 s grace with
        # three ranks on two cores, adding a warning these tests compare exactly: off here.
        env={
            **os.environ, "CLEARML_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "OUT": str(out),
            "TRACKED_REPRODUCIBLE": "0", **env,
        },
    )  # fmt: skip
    return {r: _line(out, r, done.stdout + done.stderr) for r in range(ranks)}


def _line(out: Path, rank: int, log: str) -> list[str]:
    path = out / f"rank{rank}.txt"
    assert path.is_file(), log[-3000:]
    line = path.read_text(encoding="utf-8").strip()
    return line.split(" ", 2 if line.startswith("RESULT") else 3)  # RESULT rank json | RAISED rank type message


def single_process(n: int) -> Any:
    from support.spmd_evaluation import data  # imports torch.distributed: only once a test has not skipped

    @tracked_eval(verbose=False, task_name="spmd")
    def evaluate(dataset: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from dataset

    return evaluate(data(n))


@pytest.mark.torch
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_make_one_run_equal_to_a_single_process_run(clearml_cache: Path, ranks: int) -> None:
    """2 ranks, and 3 for uneven shards: one session, exact means, the same statistics and examples table."""
    pytest.importorskip("torch.distributed")
    lines = torchrun(ranks, clearml_cache / "spmd", N="10")
    results = [json.loads(lines[r][2]) for r in range(ranks)]
    assert all(r == results[0] for r in results)  # every rank: the same global result
    one = single_process(10)
    metrics = results[0]["metrics"]
    assert metrics["num_ranks"] == ranks
    assert metrics["num_examples"] == 10
    for name in ("correct", "loss"):
        assert metrics[name] == one[name]  # exactly: the same values summed in the same order
    (session_dir,) = [p for p in (clearml_cache / "spmd" / "offline").iterdir() if p.is_dir()]  # one run
    assert str(session_dir) == results[0]["session"]
    session = read_session(session_dir)
    assert session.status == "completed"
    examples = session.examples()
    pd.testing.assert_frame_equal(examples, one.examples, check_dtype=False)
    points = session.scalars["Training Progress"]["correct"]
    assert [i for i, _ in points] == list(range(10))  # global example indices
    stats = session.statistics["loss"]
    assert stats["stderr"] == pytest.approx(one.stats.loc["loss", "stderr"])


@pytest.mark.torch
def test_a_rank_that_raises_makes_every_rank_raise_and_the_run_failed(clearml_cache: Path) -> None:
    pytest.importorskip("torch.distributed")
    lines = torchrun(3, clearml_cache / "spmd", N="12", MODE="raise")
    assert lines[1][:3] == ["RAISED", "1", "ValueError"]
    for rank in (0, 2):
        assert lines[rank][2] == "DistributedEvalError"
        assert "rank 1 broke" in lines[rank][3]
    (session_dir,) = [p for p in (clearml_cache / "spmd" / "offline").iterdir() if p.is_dir()]
    session = read_session(session_dir)
    assert session.status == "failed"
    assert "rank 1 broke" in session.error
    assert session.single_values["num_examples"] == 4 + 2 + 4  # what every rank had scored


@pytest.mark.torch
def test_distributed_sampler_padding_is_counted_once_by_id(clearml_cache: Path) -> None:
    pytest.importorskip("torch.distributed")
    lines = torchrun(3, clearml_cache / "spmd", N="10", MODE="pad", ID_FIELD="id")
    metrics = json.loads(lines[0][2])["metrics"]
    one = single_process(10)
    assert metrics["num_examples"] == 10  # not 12
    assert metrics["correct"] == one["correct"]
    assert metrics["loss"] == one["loss"]


@pytest.mark.torch
def test_one_duplicate_is_said_in_good_grammar(clearml_cache: Path) -> None:
    """11 examples on 3 ranks: the sampler pads one; one warning, '1 example scored twice ... is counted once'."""
    pytest.importorskip("torch.distributed")
    lines = torchrun(3, clearml_cache / "spmd", N="11", MODE="pad", ID_FIELD="id")
    result = json.loads(lines[0][2])
    assert result["metrics"]["num_examples"] == 11
    assert result["warnings"] == ["tracked: spmd: 1 example scored twice (by id) is counted once"]


@pytest.mark.torch
def test_a_rank_that_dies_leaves_the_others_a_bounded_wait_and_rank_0_records_its_part(tmp_path: Path) -> None:
    """Ranks started by hand (no torchrun agent to kill the rest): rank 1 exits mid-run; the others fail
    within gather_timeout with a clear error, and rank 0 records what it scored as a failed run."""
    pytest.importorskip("torch.distributed")
    port = str(free_port())
    cache = tmp_path / "cache"
    base = {"CLEARML_CACHE_DIR": str(cache), "MODE": "die", "TIMEOUT": "20", "N": "12", "WORLD_SIZE": "3",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OUT": str(tmp_path)}  # fmt: skip
    command = [sys.executable, str(FOLDER / "spmd_evaluation.py")]
    procs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, **base, "RANK": str(rank)})
        for rank in range(3)
    ]
    logs = [proc.communicate(timeout=180)[1] for proc in procs]
    assert procs[1].returncode == 9
    for rank in (0, 2):
        line = _line(tmp_path, rank, logs[rank])
        assert line[:3] == ["RAISED", str(rank), "DistributedEvalError"]
        assert "could not gather" in line[3]
    (session_dir,) = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    session = read_session(session_dir)
    assert session.status == "failed"
    assert session.single_values["num_examples"] == 4  # rank 0's own part


@pytest.mark.torch
def test_the_main_example_on_two_ranks_is_one_session_equal_to_one_process(clearml_cache: Path) -> None:
    """``torchrun --nproc_per_node=2 examples/evaluate_qa.py``: one offline session, the 1-process metrics."""
    pytest.importorskip("torch.distributed")
    example = ROOT / "examples" / "evaluate_qa.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         str(example)],
        capture_output=True, text=True, timeout=240, check=True,
        env={**env, "CLEARML_CACHE_DIR": str(clearml_cache / "two")},
    )  # fmt: skip
    subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=True,
        env={**env, "CLEARML_CACHE_DIR": str(clearml_cache / "one")},
    )  # fmt: skip
    (two,) = [p for p in (clearml_cache / "two" / "offline").iterdir() if p.is_dir()]
    (one,) = [p for p in (clearml_cache / "one" / "offline").iterdir() if p.is_dir()]
    ranked, single = read_session(two).single_values, read_session(one).single_values
    assert ranked["num_ranks"] == 2
    for name in ("token_recall", "token_recall_stderr", "num_examples", "dataset_num_eval"):
        assert ranked[name] == single[name]


@pytest.mark.torch
@pytest.mark.parametrize(
    ("point", "task_made"),
    [("start:ClearMLSink", False), ("start:JournalSink", True), ("start:ConsoleSink", True)],
    ids=["before-the-task", "task-made", "journal-begun"],
)
def test_a_rank_that_dies_while_rank_0_creates_its_task_leaves_a_failed_run(
    clearml_cache: Path, point: str, task_made: bool
) -> None:
    """torchrun, 2 ranks: rank 1 dies while rank 0 is still creating its ClearML task (rank 0 held at ``point``),
    so torchrun ends rank 0 with SIGTERM. Rank 0 records its part as a failed run: in its offline session when
    ClearML's task was made (in the journal begun there, if it was: one journal), else saved without ClearML
    (its journal, beside the local save)."""
    pytest.importorskip("torch.distributed")
    from tracked.store.journal import read_journal

    cache, paused = clearml_cache / "spmd", clearml_cache / "paused"
    out = cache / "ranks"
    out.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         str(FOLDER / "spmd_evaluation.py")],
        capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "CLEARML_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "OUT": str(out), "N": "8",
             "MODE": "die", "DIE_WHEN": str(paused), "TRACKED_PAUSE_AT": point, "TRACKED_PAUSE_FILE": str(paused)},
    )  # fmt: skip
    log = (done.stdout + done.stderr)[-3000:]
    assert done.returncode != 0, log
    assert paused.read_text(encoding="utf-8").split()[1] == point  # rank 0 was there when rank 1 died
    assert not list(out.iterdir()), log  # no rank returned: rank 1 died, rank 0 was ended by torchrun
    sessions = [p for p in (cache / "offline").iterdir() if p.is_dir()] if (cache / "offline").is_dir() else []
    assert len(sessions) == int(task_made), log
    (local,) = (cache / "tracked-runs").glob("*/metrics.json")  # the local save: metrics, summary, examples
    record = json.loads(local.read_text(encoding="utf-8"))
    assert record["status"] == "failed"
    assert record["metrics"]["num_examples"] == 0  # what rank 0 had scored: nothing yet
    # The journal: in the offline session ClearML had made, else a folder of its own beside the local save.
    (run_json,) = [*(cache / "offline").glob("*/tracked/*/run.json"), *(cache / "tracked-runs").glob("*/run.json")]
    journal = read_journal(run_json.parent)
    assert journal.status == "failed"
    assert "rank 0 of 2 was ended by a signal" in journal.state["error"]
    assert journal.count == 0
    session = read_session(sessions[0] if task_made else run_json.parent)  # `tracked show` reads either
    assert session.status == "failed"
    assert session.single_values["num_examples"] == 0
    assert not session.problems


@pytest.mark.torch
def test_a_rank_ended_by_a_signal_in_a_lazy_evaluation_still_gathers_the_others(tmp_path: Path) -> None:
    """Ranks started by hand: rank 0 iterates lazily, takes 2 examples and gets SIGTERM (ended from the
    handler: nothing unwinds a lazy evaluation), its global run open. It still gathers with rank 1, waiting
    there: one run of both ranks' examples, recorded as stopped; rank 0 ends by the signal, and rank 1 raises
    DistributedEvalError (another rank did not complete)."""
    import signal

    pytest.importorskip("torch.distributed")
    cache = tmp_path / "cache"
    base = {"CLEARML_CACHE_DIR": str(cache), "MODE": "term", "TIMEOUT": "30", "N": "12", "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OUT": str(tmp_path)}  # fmt: skip
    command = [sys.executable, str(FOLDER / "spmd_evaluation.py")]
    procs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, **base, "RANK": str(rank)})
        for rank in range(2)
    ]
    logs = [proc.communicate(timeout=180)[1] for proc in procs]
    assert procs[0].returncode == -signal.SIGTERM, logs[0][-3000:]
    line = _line(tmp_path, 1, logs[1])
    assert line[:3] == ["RAISED", "1", "DistributedEvalError"]  # as for any rank that did not complete
    assert "another rank did not complete" in line[3]
    (session_dir,) = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    session = read_session(session_dir)
    assert session.status == "stopped"
    assert session.single_values["num_examples"] == 2 + 6  # rank 0's 2 and rank 1's 6
