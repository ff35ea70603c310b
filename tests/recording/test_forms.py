"""Every decorated form runs the evaluation and hands back its final metrics."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tracked import EvalResult, read_session, tracked_eval

SCORES = [0.5, 1.0, 0.0, 0.5]


@tracked_eval
def plain(threshold: float = 0.5) -> dict[str, float]:
    """A plain evaluation."""
    return {"accuracy": 0.75, "threshold": threshold}


@tracked_eval
def generator(n: int = 4) -> Iterator[float]:
    """A generator evaluation."""
    yield from SCORES[:n]


@tracked_eval(project="tests", task_name="gen-with-return")
def generator_returning() -> Iterator[dict[str, Any]]:
    for score in SCORES:
        yield {"f1": score}
    return {"f1_macro": 0.9}


@tracked_eval
async def coroutine() -> dict[str, float]:
    await asyncio.sleep(0.05)
    return {"accuracy": 0.5}


@tracked_eval
async def async_generator() -> AsyncIterator[float]:
    for score in SCORES:
        await asyncio.sleep(0)
        yield score


class Evaluator:
    scale = 2.0

    def __init__(self) -> None:
        self.offset = 1.0

    @tracked_eval
    def method(self, n: int) -> Iterator[float]:
        for i in range(n):
            yield self.offset + i

    @tracked_eval
    async def async_method(self) -> AsyncIterator[float]:
        yield self.offset

    @classmethod
    @tracked_eval
    def class_method(cls, n: int) -> Iterator[float]:
        for _ in range(n):
            yield cls.scale

    @staticmethod
    @tracked_eval
    def static_method(n: int) -> dict[str, int]:
        return {"n": n}

    @tracked_eval
    @classmethod
    def class_method_outer(cls) -> dict[str, float]:
        return {"scale": cls.scale}

    @tracked_eval
    @staticmethod
    def static_method_outer() -> dict[str, float]:
        return {"value": 3.0}


def test_plain_function_returns_its_metrics_plus_duration() -> None:
    """A plain function's returned dict becomes the final metrics, with duration_seconds added."""
    result = plain()
    assert isinstance(result, EvalResult)
    assert result["accuracy"] == 0.75
    assert result["threshold"] == 0.5
    assert result["duration_seconds"] >= 0
    assert "num_examples" not in result  # nothing yielded and no dataset: not known
    assert read_session(result.session_dir).single_values["accuracy"] == 0.75


def test_generator_runs_to_the_end_and_reports_means() -> None:
    """Calling a decorated generator runs it; with no return, the final metric is the mean."""
    result = generator()
    assert result["score"] == pytest.approx(sum(SCORES) / 4)
    assert result["num_examples"] == 4
    session = read_session(result.session_dir)
    assert session.scalars["Training Progress"]["score"] == list(enumerate(SCORES))


def test_generator_return_value_is_merged_over_the_means() -> None:
    """A returned dict adds to (and wins over) the means of the yielded metrics."""
    result = generator_returning()
    assert result["f1_macro"] == 0.9
    assert result["f1"] == pytest.approx(0.5)
    assert result.returned == {"f1_macro": 0.9}
    session = read_session(result.session_dir)
    assert session.name == "gen-with-return"
    assert session.project == "tests"


def test_coroutine_returns_an_awaitable_and_times_the_await() -> None:
    """An async def returns an awaitable of the result; duration includes the awaited time."""
    awaitable = coroutine()
    assert inspect.isawaitable(awaitable)
    result = asyncio.run(awaitable)
    assert result["accuracy"] == 0.5
    assert result["duration_seconds"] >= 0.05


def test_async_generator_is_consumed_to_the_end() -> None:
    """An async generator is consumed by awaiting the call."""
    result = asyncio.run(async_generator())
    assert result["num_examples"] == 4
    assert read_session(result.session_dir).scalars["Training Progress"]["score"] == list(enumerate(SCORES))


def test_methods_classmethods_and_staticmethods() -> None:
    """Bound methods see self, classmethods see cls, staticmethods see neither; both decorator orders work."""
    evaluator = Evaluator()
    assert evaluator.method(3)["score"] == pytest.approx(2.0)
    assert Evaluator.class_method(2)["score"] == 2.0
    assert evaluator.class_method(1)["score"] == 2.0
    assert Evaluator.static_method(5)["n"] == 5
    assert Evaluator.class_method_outer()["scale"] == 2.0
    assert Evaluator.static_method_outer()["value"] == 3.0


def test_metadata_and_kind_survive_decoration() -> None:
    """Name, docstring, signature and the coroutine/generator nature are kept."""
    assert plain.__name__ == "plain"
    assert plain.__doc__ == "A plain evaluation."
    assert str(inspect.signature(plain)) == str(inspect.signature(plain.__wrapped__))
    assert inspect.signature(plain).parameters["threshold"].default == 0.5
    assert inspect.iscoroutinefunction(coroutine)
    assert generator.__doc__ == "A generator evaluation."


def test_inspect_describes_what_a_call_returns() -> None:
    """A generator run to the end is no generator function; an async generator's call is awaited."""
    assert not inspect.isgeneratorfunction(generator)
    assert inspect.iscoroutinefunction(async_generator)
    assert not inspect.isasyncgenfunction(async_generator)
    assert inspect.iscoroutinefunction(coroutine)
    assert inspect.iscoroutinefunction(Evaluator().async_method)
    assert not inspect.isgeneratorfunction(Evaluator().method)

    @tracked_eval(lazy=True)
    def lazy() -> Iterator[float]:
        yield 1.0

    assert inspect.isgeneratorfunction(lazy)  # lazy: the call still returns a generator


def test_result_is_a_read_only_mapping_with_run_details() -> None:
    """The result cannot be changed; it gives the examples, the task id and the session folder."""
    result = generator()
    with pytest.raises(TypeError):
        result["score"] = 1.0  # type: ignore[index]
    assert list(result.examples["score"]) == SCORES
    assert list(result.examples.index) == [0, 1, 2, 3]
    assert result.examples.index.name == "index"
    assert result.task_id is not None
    assert result.task_id.startswith("offline-")
    assert result.session_dir is not None
    assert result.session_dir.name == result.task_id
    assert result.status == "completed"
    assert result.metrics == dict(result)


def test_enabled_false_gives_the_same_kind_of_result_and_writes_nothing(
    clearml_cache: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """enabled=False: callers keep working (an EvalResult with its metrics and examples); no task, file or output."""

    @tracked_eval(enabled=False)
    def evaluate() -> Iterator[dict[str, Any]]:
        yield {"correct": 1.0, "prediction": "a"}
        yield {"correct": 0.0, "prediction": "b"}

    result = evaluate()
    assert isinstance(result, EvalResult)
    assert result["correct"] == 0.5
    assert result["num_examples"] == 2
    assert list(result.examples["prediction"]) == ["a", "b"]
    assert result.task_id is None
    assert result.session_dir is None
    assert capsys.readouterr() == ("", "")
    assert not clearml_cache.exists() or not any(clearml_cache.iterdir())


def test_environment_switch_off_keeps_every_form_returning_results(
    monkeypatch: pytest.MonkeyPatch, clearml_cache: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """TRACKED_ENABLED=0 (CI, unit tests): every form returns what it returns when on; nothing is recorded."""
    monkeypatch.setenv("TRACKED_ENABLED", "0")
    result = generator()
    assert isinstance(result, EvalResult)
    assert result["score"] == sum(SCORES) / len(SCORES)
    assert plain()["accuracy"] == 0.75
    assert asyncio.run(coroutine())["accuracy"] == 0.5
    assert asyncio.run(async_generator())["num_examples"] > 0
    assert capsys.readouterr() == ("", "")
    assert not clearml_cache.exists() or not any(clearml_cache.iterdir())


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An option given to the decorator beats the environment; the environment beats the default."""
    monkeypatch.setenv("TRACKED_PROJECT", "from-env")
    monkeypatch.setenv("TRACKED_TASK_NAME", "env-name")
    assert read_session(generator_returning().session_dir).project == "tests"
    session = read_session(generator().session_dir)
    assert session.project == "from-env"
    assert session.name == "env-name"


def test_bad_environment_value_warns_and_uses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed TRACKED_* variable is a warning naming it, not a broken evaluation."""
    monkeypatch.setenv("TRACKED_MAX_POINTS", "lots")
    with pytest.warns(UserWarning, match="TRACKED_MAX_POINTS"):
        result = generator()
    assert result["num_examples"] == 4


def test_unknown_option_is_rejected_when_decorating() -> None:
    """A typo in an option name fails at decoration time, not hours into a run."""
    with pytest.raises(TypeError, match="progres_title"):
        tracked_eval(progres_title="x")  # type: ignore[call-overload]
