"""Overlapping runs (threads, asyncio tasks, nesting) share one task and never mix examples; pickling."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import pool_evaluations

from tracked import EvalResult, read_session, tracked_eval


def session_folders(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "offline").iterdir() if p.is_dir())


def test_threads_share_one_task_with_separate_series(clearml_cache: Path) -> None:
    """Four threads at once: one task; each run's series holds exactly its own examples."""
    barrier = threading.Barrier(4, timeout=60)  # a broken run fails the test instead of hanging it

    @tracked_eval(verbose=False)
    def evaluate(worker: int) -> Iterator[float]:
        barrier.wait()  # all four runs are open before any yields
        for i in range(50):
            yield float(worker * 1000 + i)

    results: dict[int, EvalResult] = {}

    def work(worker: int) -> None:
        results[worker] = evaluate(worker)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker, result in results.items():
        assert result["num_examples"] == 50
        assert result["score"] == pytest.approx(worker * 1000 + 24.5)
    (folder,) = session_folders(clearml_cache)
    chart = read_session(folder).scalars["Training Progress"]
    runs = [series for series in chart if not series.endswith("(running mean)")]
    assert len(runs) == 4
    for series in runs:
        values = [v for _, v in chart[series]]
        assert [i for i, _ in chart[series]] == list(range(50))
        worker = int(values[0]) // 1000
        assert values == [float(worker * 1000 + i) for i in range(50)]  # no other run's examples


def test_asyncio_tasks_share_one_task_with_separate_series(clearml_cache: Path) -> None:
    """Three async generator evaluations gathered at once: each is its own run, no mixing."""

    @tracked_eval(verbose=False)
    async def evaluate(worker: int) -> AsyncIterator[float]:
        for i in range(20):
            await asyncio.sleep(0)
            yield float(worker * 100 + i)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(evaluate(w) for w in range(3))))

    results = asyncio.run(main())
    assert [r["score"] for r in results] == pytest.approx([9.5, 109.5, 209.5])
    (folder,) = session_folders(clearml_cache)
    session = read_session(folder)
    chart = session.scalars["Training Progress"]
    assert len([s for s in chart if not s.endswith("(running mean)")]) == 3
    for series, points in chart.items():
        if series.endswith("(running mean)"):
            continue
        base = int(points[0][1]) // 100 * 100
        assert [v for _, v in points] == [float(base + i) for i in range(20)]


def test_nested_evaluations_report_into_one_task_named_after_each_inner(clearml_cache: Path) -> None:
    """A suite calling per-dataset evaluations: one task; inner series and single values carry the inner name."""

    @tracked_eval(verbose=False, task_name="squad")
    def squad() -> Iterator[float]:
        yield from (1.0, 0.0)

    @tracked_eval(verbose=False, task_name="trivia")
    def trivia() -> Iterator[float]:
        yield from (1.0, 1.0, 1.0)

    @tracked_eval(verbose=False, task_name="suite")
    def suite() -> dict[str, float]:
        inner = {"squad": squad(), "trivia": trivia()}
        assert inner["squad"]["score"] == 0.5  # the suite gets the inner results back
        return {f"{name}_score": result["score"] for name, result in inner.items()}

    result = suite()
    assert result["squad_score"] == 0.5
    assert result["trivia_score"] == 1.0
    (folder,) = session_folders(clearml_cache)
    session = read_session(folder)
    assert session.name == "suite"
    assert session.scalars["Training Progress"]["squad/score"] == [(0, 1.0), (1, 0.0)]
    assert session.scalars["Training Progress"]["trivia/score"] == [(0, 1.0), (1, 1.0), (2, 1.0)]
    assert session.single_values["squad/score"] == 0.5
    assert session.single_values["trivia/num_examples"] == 3
    assert session.single_values["squad_score"] == 0.5
    assert session.status == "completed"


def test_decorated_functions_pickle_by_reference() -> None:
    """A decorated function pickles as a reference to itself, as a plain function does."""
    assert pickle.loads(pickle.dumps(pool_evaluations.scaled)) is pool_evaluations.scaled
    method = pickle.loads(pickle.dumps(pool_evaluations.Suite.method))
    assert method == pool_evaluations.Suite.method  # a fresh binding of the same function
    bound = pickle.loads(pickle.dumps(pool_evaluations.Suite().method))
    assert bound(3)["num_examples"] == 3


def test_results_pickle_with_their_examples() -> None:
    """An EvalResult survives pickling: metrics, examples, status, session folder."""
    result = pool_evaluations.scaled(2.0)
    copy = pickle.loads(pickle.dumps(result))
    assert dict(copy) == dict(result)
    assert list(copy.examples["score"]) == [0.0, 2.0, 4.0, 6.0]
    assert copy.session_dir == result.session_dir
    assert copy.status == "completed"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_runs_in_a_process_pool(method: str, clearml_cache: Path) -> None:
    """ProcessPoolExecutor with fork and spawn: each worker's run comes back and its session is written."""
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        results = list(pool.map(pool_evaluations.scaled, [1.0, 3.0], timeout=120))
    assert [r["score"] for r in results] == [1.5, 4.5]
    assert all(r.session_dir is not None and r.session_dir.parent == clearml_cache / "offline" for r in results)
    values = sorted(read_session(r.session_dir).single_values["score"] for r in results if r.session_dir)
    assert values == [1.5, 4.5]
