"""resume=True: a run that died, stopped or failed is continued where its journal stands; a completed one never."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_until

from tracked import TrackedWarning, read_session, tracked_eval

TIMEOUT = 60
N = 300


def value_of(x: int) -> float:
    return ((x * 37) % 11) / 10


EXACT_MEAN = sum(value_of(x) for x in range(N)) / N

# argv: the file each scored example is appended to, seconds per example,
# a gate file the evaluation waits for at its first example ("-": none)
RESUMABLE_RUN = f"""
    import json, sys, time
    from pathlib import Path
    from tracked import tracked_eval

    scored, pause, gate = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]

    @tracked_eval(resume=True, flush_interval=0.2)
    def evaluate(dataset):
        with scored.open("a") as out:
            for x in dataset:
                while gate != "-" and not Path(gate).exists():
                    time.sleep(0.02)
                time.sleep(pause)
                out.write(f"{{x}}\\n")
                out.flush()
                yield {{"acc": ((x * 37) % 11) / 10, "prediction": f"p{{x}}"}}

    result = evaluate(list(range({N})))
    examples = result.examples
    print("RESULT", json.dumps({{
        "acc": result["acc"],
        "num_examples": result["num_examples"],
        "index": examples.index.tolist(),
        "values": examples["acc"].tolist(),
        "predictions": examples["prediction"].tolist(),
        "session": str(result.session_dir),
    }}))
"""


class Child:
    """The resumable evaluation in a fresh interpreter, stdout and stderr going to files."""

    def __init__(self, folder: Path, name: str, pause: float, gate: Path | None = None) -> None:
        script = folder / "evaluate.py"
        if not script.exists():
            script.write_text(textwrap.dedent(RESUMABLE_RUN))
        self.scored = folder / f"{name}.scored"
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), str(self.scored), str(pause), str(gate or "-")],
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=folder,
            )

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def scored_items(self) -> list[int]:
        return [int(line) for line in self.scored.read_text().split()] if self.scored.exists() else []

    def session_dir(self) -> Path:
        def announced() -> str | None:
            for line in self.stdout.splitlines():
                if line.startswith("tracked: evaluate: offline session "):
                    return line.split()[4]
            if self.proc.poll() is not None:
                pytest.fail(f"the child exited ({self.proc.returncode}) first:\n{self.stdout}\n{self.stderr}")
            return None

        return Path(wait_until(announced, what="the session line"))

    def result(self) -> dict[str, Any]:
        assert self.proc.wait(timeout=TIMEOUT) == 0, self.stdout + self.stderr
        return json.loads(self.stdout.split("RESULT ", 1)[1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=TIMEOUT)


def journal_count(session: Path) -> int:
    try:
        return int(json.loads((session / "tracked" / "0" / "run.json").read_text())["count"])
    except (OSError, ValueError, KeyError):
        return 0


def interrupted_run(tmp_path: Path, children: list[Child], at_least: int) -> tuple[Child, Path, int]:
    """A run killed with SIGKILL once its journal holds at least ``at_least`` examples; (child, session, recorded)."""
    child = Child(tmp_path, "first", pause=0.005)
    children.append(child)
    session = child.session_dir()
    wait_until(lambda: journal_count(session) >= at_least, what=f"{at_least} examples in the journal")
    child.kill()
    read = read_session(session)
    assert read.status == "interrupted"
    assert read.num_examples is not None
    return child, session, read.num_examples


def test_resume_after_sigkill_scores_only_the_rest(tmp_path: Path, children: list[Child]) -> None:
    """After kill -9, the same evaluation with resume=True scores only what the journal lacks; the result is whole."""
    first, first_session, recorded = interrupted_run(tmp_path, children, 100)
    assert 100 <= recorded < N
    assert first.scored_items()[:recorded] == list(range(recorded))

    second = Child(tmp_path, "second", pause=0.002)
    children.append(second)
    result = second.result()
    assert f"resuming {first_session / 'tracked' / '0'} after example {recorded:,}" in second.stdout
    assert second.scored_items() == list(range(recorded, N))
    assert result["num_examples"] == N
    assert result["acc"] == pytest.approx(EXACT_MEAN, rel=1e-12)
    assert result["index"] == list(range(N))
    assert result["values"] == [value_of(x) for x in range(N)]
    assert result["predictions"] == [f"p{x}" for x in range(N)]

    session = read_session(result["session"])
    assert Path(result["session"]) != first_session
    assert session.status == "completed"
    assert session.num_examples == N
    assert session.single_values["acc"] == pytest.approx(EXACT_MEAN, rel=1e-12)
    iterations = [i for i, _ in session.scalars["Training Progress"]["acc"]]
    assert iterations == list(range(N))
    means = session.scalars["Training Progress"]["acc (running mean)"]
    assert means[-1] == (N - 1, pytest.approx(EXACT_MEAN, rel=1e-12))


def scorer(calls: list[int], fail_at: list[int | None], **options: Any) -> Callable[..., Any]:
    """An in-process evaluation over ``dataset`` recording each scored item; raises at item ``fail_at[0]``."""

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05, task_name="scorer", **options)
    def evaluate(dataset: Iterable[int], threshold: float = 0.5) -> Iterator[dict[str, float]]:
        for x in dataset:
            if x == fail_at[0]:
                raise RuntimeError(f"model crashed at {x}")
            calls.append(int(x))
            yield {"acc": value_of(int(x))}

    return evaluate


def tracked_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TrackedWarning)]


def test_a_completed_run_is_never_resumed() -> None:
    """Two calls with resume=True after a completed run: the second scores every example again."""
    calls: list[int] = []
    evaluate = scorer(calls, [None])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = evaluate(list(range(30)))
        second = evaluate(list(range(30)))
    assert tracked_warnings(caught) == []
    assert calls == list(range(30)) * 2
    assert first["num_examples"] == second["num_examples"] == 30
    assert second["acc"] == pytest.approx(sum(value_of(x) for x in range(30)) / 30)
    assert second.session_dir != first.session_dir


def journals(cache: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(cache.glob("offline/*/tracked/0/run.json"))]


def test_a_failed_run_is_resumed_at_the_failure(clearml_cache: Path) -> None:
    """An evaluation that raised at example 50: the journal holds 0-49; the next call scores 50 on only."""
    calls: list[int] = []
    fail_at: list[int | None] = [50]
    evaluate = scorer(calls, fail_at)
    with pytest.raises(RuntimeError, match="model crashed at 50"):
        evaluate(list(range(100)))
    (state,) = journals(clearml_cache)
    assert state["status"] == "failed"
    assert state["count"] == 50
    failed = read_session(state["session"])
    assert failed.status == "failed"
    assert failed.num_examples == 50
    assert failed.examples()["acc"].tolist() == [value_of(x) for x in range(50)]

    calls.clear()
    fail_at[0] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(list(range(100)))
    assert tracked_warnings(caught) == []
    assert calls == list(range(50, 100))
    assert result["num_examples"] == 100
    assert result["acc"] == pytest.approx(sum(value_of(x) for x in range(100)) / 100, rel=1e-12)
    assert result.examples.index.tolist() == list(range(100))
    assert result.examples["acc"].tolist() == [value_of(x) for x in range(100)]


def test_two_processes_resuming_the_same_run(tmp_path: Path, children: list[Child]) -> None:
    """Two resumes of one interrupted run at once: the first continues it, the second warns and runs fresh."""
    _, first_session, recorded = interrupted_run(tmp_path, children, 50)
    gate = tmp_path / "gate"
    resumer = Child(tmp_path, "resumer", pause=0.002, gate=gate)
    children.append(resumer)
    wait_until(lambda: "resuming" in resumer.stdout, what="the resuming line")

    other = Child(tmp_path, "other", pause=0.002)
    children.append(other)
    other_result = other.result()
    assert "being resumed by another process" in other.stderr
    assert other.stderr.count("being resumed by another process") == 1
    assert other.scored_items() == list(range(N))
    assert other_result["num_examples"] == N
    assert other_result["acc"] == pytest.approx(EXACT_MEAN, rel=1e-12)

    gate.touch()
    result = resumer.result()
    assert f"after example {recorded:,}" in resumer.stdout
    assert resumer.scored_items() == list(range(recorded, N))
    assert result["num_examples"] == N
    assert result["acc"] == pytest.approx(EXACT_MEAN, rel=1e-12)
    assert result["index"] == list(range(N))
    assert result["values"] == [value_of(x) for x in range(N)]
    assert len({result["session"], other_result["session"], str(first_session)}) == 3


def test_without_a_dataset_argument_it_cannot_resume() -> None:
    """A generator with no ``dataset`` parameter: one 'cannot resume' warning and a fresh run."""
    calls: list[int] = []
    fail_at: list[int | None] = [5]

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05)
    def evaluate(items: list[int]) -> Iterator[dict[str, float]]:
        for x in items:
            if x == fail_at[0]:
                raise RuntimeError("crash")
            calls.append(x)
            yield {"acc": value_of(x)}

    with pytest.raises(RuntimeError):
        evaluate(list(range(20)))
    calls.clear()
    fail_at[0] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(list(range(20)))
    messages = tracked_warnings(caught)
    assert len(messages) == 1, messages
    assert "cannot resume" in messages[0]
    assert calls == list(range(20))
    assert result["num_examples"] == 20


@pytest.mark.torch
def test_a_dataloader_cannot_be_resumed() -> None:
    """A torch DataLoader yields batches: one warning naming DataLoader, and a fresh run."""
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    calls: list[int] = []
    fail_at: list[int | None] = [5]

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05)
    def evaluate(dataset: Any) -> Iterator[dict[str, float]]:
        for batch in dataset:
            for x in batch.tolist():
                if x == fail_at[0]:
                    raise RuntimeError("crash")
                calls.append(x)
                yield {"acc": value_of(x)}

    loader = DataLoader(list(range(20)), batch_size=4)
    with pytest.raises(RuntimeError):
        evaluate(loader)
    calls.clear()
    fail_at[0] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(loader)
    messages = tracked_warnings(caught)
    assert len(messages) == 1, messages
    assert "cannot resume" in messages[0]
    assert "DataLoader" in messages[0]
    assert calls == list(range(20))
    assert result["num_examples"] == 20


def test_other_arguments_or_dataset_length_are_another_evaluation() -> None:
    """A run is only resumed by a call with the same simple arguments and dataset length."""
    calls: list[int] = []
    fail_at: list[int | None] = [5]
    evaluate = scorer(calls, fail_at)
    with pytest.raises(RuntimeError):
        evaluate(list(range(20)), threshold=0.5)
    fail_at[0] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calls.clear()
        other_args = evaluate(list(range(20)), threshold=0.7)
        assert calls == list(range(20))
        calls.clear()
        other_length = evaluate(list(range(19)), threshold=0.5)
        assert calls == list(range(19))
        calls.clear()
        same = evaluate(list(range(20)), threshold=0.5)
        assert calls == list(range(5, 20))
    assert tracked_warnings(caught) == []
    assert other_args["num_examples"] == same["num_examples"] == 20
    assert other_length["num_examples"] == 19
    assert same["acc"] == pytest.approx(sum(value_of(x) for x in range(20)) / 20, rel=1e-12)


def test_batched_runs_resume_when_the_dataset_items_are_examples() -> None:
    """The evaluation makes the batches from a dataset of examples: the resumed run scores only the rest."""
    import numpy as np

    from tracked import batch

    calls: list[int] = []
    fail_at: list[int | None] = [120]

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05, task_name="batched")
    def evaluate(dataset: list[int]) -> Iterator[Any]:
        for start in range(0, len(dataset), 40):
            part = dataset[start : start + 40]
            if fail_at[0] in part:
                raise RuntimeError("model crashed")
            calls.extend(part)
            yield batch(acc=np.array([value_of(x) for x in part]), prediction=[f"p{x}" for x in part])

    with pytest.raises(RuntimeError):
        evaluate(list(range(N)))
    assert calls == list(range(120))
    fail_at[0] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(list(range(N)))
    assert tracked_warnings(caught) == []
    assert calls == list(range(120)) + list(range(120, N))
    assert result["num_examples"] == N
    assert result["acc"] == pytest.approx(EXACT_MEAN, rel=1e-12)
    assert result.examples["prediction"].tolist() == [f"p{x}" for x in range(N)]


def _batches_as_items(task_name: str, batches: int, size: int, crash_at: int) -> tuple[Any, list[str]]:
    """A run over a list of batches (each item: ``size`` examples) that crashes at item ``crash_at``, then
    resumed: the result and the warnings of the resumed call."""
    import numpy as np

    from tracked import batch

    fail = [True]

    @tracked_eval(resume=True, verbose=False, task_name=task_name)
    def evaluate(dataset: list[Any]) -> Iterator[Any]:
        for k, scores in enumerate(dataset):
            if k == crash_at and fail[0]:
                raise RuntimeError("model crashed")
            yield batch(score=scores)

    data = [np.full(size, float(k)) for k in range(batches)]
    with pytest.raises(RuntimeError):
        evaluate(data)
    fail[0] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(data)
    return result, tracked_warnings(caught)


def test_a_dataset_of_batches_is_not_resumed_as_if_its_items_were_examples() -> None:
    """Leaving out as many items as examples were done would skip batches never scored: a fresh run instead."""
    result, said = _batches_as_items("batches as items", batches=10, size=100, crash_at=5)
    assert any("its items are not single examples" in message for message in said)
    assert result["num_examples"] == 1000
    assert result["score"] == pytest.approx(4.5)


def test_a_dataset_of_batches_resumed_too_early_to_tell_says_so_at_the_end() -> None:
    """Fewer examples done than the dataset has items: the batches left out are only known at the end. Said."""
    _, said = _batches_as_items("batches as items, early", batches=100, size=10, crash_at=3)
    assert len(said) == 1
    assert "recorded 730 examples from a dataset of 100 items" in said[0]
    assert "run it again without resume" in said[0]
