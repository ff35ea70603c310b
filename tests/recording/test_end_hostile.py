"""The end of a run under attack: a signal landing halfway through an example (in the evaluation's thread or
another's), a resumed journal edited by hand. Every copy read back holds each whole example once and
nothing half-recorded."""

from __future__ import annotations

import json
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.scripts import only_session, run_script

from tracked import read_session, tracked_eval

# argv-free: the signal's name is put in by the test. The detail of example 5 sends the signal while the
# example is being recorded (its metric "a" is in, "b" and the detail are not): a Ctrl-C or SIGTERM landing
# at that instant. Example 5 is half-recorded and must be left out; 0-4 are whole and must all be kept.
HALFWAY_IN_THE_MAIN_THREAD = """
    import os, signal
    from tracked import tracked_eval

    class Interrupting:
        def __repr__(self):
            os.kill(os.getpid(), signal.{signal})
            return "never shown"

    @tracked_eval(verbose=False, flush_interval=0.01)
    def evaluate():
        for i in range(10):
            yield {{"a": 1.0, "note": Interrupting() if i == 5 else f"n{{i}}", "b": 2.0}}

    evaluate()
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_halfway_through_an_example_leaves_that_example_out(clearml_cache: Path, name: str) -> None:
    done = run_script(HALFWAY_IN_THE_MAIN_THREAD.format(signal=name), clearml_cache)
    assert done.returncode != 0, done.stdout + done.stderr
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    frame = session.examples()
    assert len(frame) == 5, frame
    assert frame["a"].tolist() == [1.0] * 5
    assert frame["b"].tolist() == [2.0] * 5
    assert frame["note"].tolist() == [f"n{i}" for i in range(5)]


# A lazy evaluation opened in the main thread, driven by a worker thread. At example 5 the worker is inside
# Run.add but has not counted the example yet (``isinstance`` reads ``__class__``, where it stalls; a thread
# switch at the start of add leaves it there as well) when SIGTERM reaches the main thread. Examples 0-4 are
# whole: all five must be kept.
NOT_YET_COUNTED_IN_ANOTHER_THREAD = """
    import signal, threading, time
    from tracked import tracked_eval

    class Stalling:
        @property
        def __class__(self):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            time.sleep(60)
            return Stalling

    @tracked_eval(verbose=False, lazy=True, flush_interval=0.01)
    def evaluate():
        for i in range(10):
            yield Stalling() if i == 5 else {"acc": 1.0, "id": f"e{i}"}

    examples = evaluate()
    worker = threading.Thread(target=lambda: list(examples), daemon=True)
    worker.start()
    worker.join()
"""


def test_a_signal_while_another_thread_begins_an_example_keeps_every_whole_one(clearml_cache: Path) -> None:
    done = run_script(NOT_YET_COUNTED_IN_ANOTHER_THREAD, clearml_cache)
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
    session = read_session(only_session(clearml_cache))
    assert session.status == "stopped"
    frame = session.examples()
    assert frame["id"].tolist() == [f"e{i}" for i in range(5)]
    assert frame["acc"].tolist() == [1.0] * 5


def _failing_then_resumed(cache: Path, edit: Any, example: Any = None) -> tuple[Any, Any]:
    """A run that failed at example 6, its journal's details edited by ``edit`` (lines -> lines), resumed:
    (the earlier journal's examples as read back, the resumed run's result). ``example``: x -> the example."""
    failing = [True]
    example = example or (lambda x: {"acc": x / 10, "label": x, "pred": f"p{x}", "note": f"n{x}"})

    @tracked_eval(verbose=False, resume=True, details=["label"])
    def evaluate(dataset: list[int]) -> Iterator[dict[str, Any]]:
        for x in dataset:
            if failing[0] and x == 6:
                raise RuntimeError("model crashed")
            yield example(x)

    with pytest.raises(RuntimeError):
        evaluate(list(range(10)))
    (journal,) = cache.rglob("tracked/0/details.jsonl")
    journal.write_text("".join(f"{line}\n" for line in edit(journal.read_text().splitlines())))
    state_file = journal.parent / "run.json"
    state = json.loads(state_file.read_text())
    state["details"]["bytes"] = journal.stat().st_size  # the edit is committed: the journal's reader takes it
    state_file.write_text(json.dumps(state))
    earlier = read_session(journal.parent.parent.parent).examples()
    failing[0] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return earlier, evaluate(list(range(10)))


@pytest.mark.parametrize(
    "added",
    [
        [2, {"pred": "later", "label": "99"}],  # example 2 written again, with fewer fields
        {"start": 1, "n": 2, "columns": {"pred": ["o1", "o2"]}},  # a block over examples 1-2
    ],
)
def test_a_resumed_journal_with_an_example_written_twice_resumes_as_it_reads(clearml_cache: Path, added: Any) -> None:
    """The resumed run holds the earlier examples as the journal it resumes reads them: an example written
    twice keeps its first details, whole (no field of one line mixed with another's)."""
    earlier, result = _failing_then_resumed(clearml_cache, lambda lines: [*lines, json.dumps(added)])
    assert earlier["pred"].tolist() == [f"p{x}" for x in range(6)]
    for frame in (result.examples, read_session(result.session_dir).examples()):
        assert frame["pred"].tolist() == [f"p{x}" for x in range(10)]
        assert frame["label"].tolist() == list(range(10))
        assert frame["note"].tolist() == [f"n{x}" for x in range(10)]


@pytest.mark.parametrize(("edited", "kind"), [("0x10", "int"), ("nan(1)", "float")])
def test_an_edited_number_python_does_not_read_stays_text(clearml_cache: Path, edited: str, kind: str) -> None:
    """A journal edited so that an int detail reads 0x10 (a float one nan(1)): pyarrow would read 16 (NaN),
    Python reads no number; the column is kept as text, in the journal read back and in the resumed run,
    as when it is read a value at a time."""
    original = "3" if kind == "int" else "0.75"

    def edit(lines: list[str]) -> list[str]:
        return [line.replace(f'"{original}"', f'"{edited}"') for line in lines]

    name = "label" if kind == "int" else "prediction"
    earlier, result = _failing_then_resumed(
        clearml_cache, edit, lambda x: {"acc": 1.0, "label": x, "prediction": x / 4}
    )
    assert earlier[name].tolist()[3] == edited
    for frame in (result.examples, read_session(result.session_dir).examples()):
        assert frame[name].tolist()[3] == edited


# Run B records in a worker thread; run A, in the main thread, is ended by SIGTERM at its example 2000.
TWO_RUNS_ONE_SIGNAL = """
    import os, signal, threading, time
    from tracked import tracked_eval

    started = threading.Event()

    @tracked_eval(verbose=False, flush_interval=0.01, task_name="B")
    def b():
        for i in range(10**9):
            started.set()
            time.sleep(0.001)
            yield {"acc": 1.0, "id": f"b{i}", "x": 2.0}

    @tracked_eval(verbose=False, flush_interval=0.01, task_name="A")
    def a():
        for i in range(10**9):
            if i == 2000:
                os.kill(os.getpid(), signal.SIGTERM)
            yield {"acc": 1.0, "id": f"a{i}", "x": 2.0}

    threading.Thread(target=b, daemon=True).start()
    started.wait()
    time.sleep(0.2)
    a()
"""


def test_sigterm_in_the_main_threads_run_stops_another_threads_run_too(clearml_cache: Path) -> None:
    """Both runs are saved as stopped (B was left running, as a SIGKILL leaves it), each with whole examples."""
    done = run_script(TWO_RUNS_ONE_SIGNAL, clearml_cache)
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
    runs = {}
    for journal in sorted((only_session(clearml_cache) / "tracked").iterdir()):
        session = read_session(journal)
        runs[session.name] = session
    assert set(runs) == {"A", "B"}
    for name, session in runs.items():
        assert session.status == "stopped", name
        frame = session.examples()
        assert len(frame) == session.num_examples > 0
        assert frame["id"].tolist() == [f"{name.lower()}{i}" for i in range(len(frame))]
        assert frame["x"].tolist() == [2.0] * len(frame)
    assert runs["A"].num_examples == 2000
