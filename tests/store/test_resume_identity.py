"""resume=True tells models apart by their content: another model's run is never continued."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tracked import TrackedWarning, tracked_eval
from tracked.common.paths import tracked_root


def scorer(calls: list[int], fail_at: list[int | None]) -> Any:
    """An evaluation of ``model`` over ``dataset`` that records each scored item and raises at ``fail_at[0]``."""

    @tracked_eval(resume=True, verbose=False, flush_interval=0.05, task_name="identity")
    def evaluate(model: Any, dataset: list[int]) -> Iterator[dict[str, float]]:
        for x in dataset:
            if x == fail_at[0]:
                raise RuntimeError(f"model crashed at {x}")
            calls.append(x)
            yield {"acc": float(x % 3 == 0)}

    return evaluate


def said(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TrackedWarning)]


def crash_then_run(first: Any, second: Any) -> tuple[list[int], list[str]]:
    """Model ``first`` crashes at example 5; then ``second`` runs with resume=True: what it scored, what it said."""
    calls: list[int] = []
    fail_at: list[int | None] = [5]
    evaluate = scorer(calls, fail_at)
    with pytest.raises(RuntimeError):
        evaluate(first, list(range(20)))
    calls.clear()
    fail_at[0] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(second, list(range(20)))
    assert result["num_examples"] == 20
    assert result["acc"] == pytest.approx(7 / 20)
    return calls, said(caught)


class Estimator:
    """scikit-learn's estimator contract: ``get_params`` and ``fit``; the fitted state in attributes."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def get_params(self) -> dict[str, float]:
        return {"alpha": self.alpha}

    def fit(self, x: Any, y: Any) -> Estimator:
        self.coef_ = np.asarray(x, dtype=float).mean(axis=0) * self.alpha
        return self


def test_another_estimator_of_the_same_type_is_another_evaluation() -> None:
    """Two fitted estimators of one class: B never continues A's run; A again does."""
    a = Estimator(1.0).fit([[1.0, 2.0]], [0])
    b = Estimator(1.0).fit([[3.0, 4.0]], [0])
    calls, messages = crash_then_run(a, b)
    assert calls == list(range(20))
    assert messages == []
    calls, messages = crash_then_run(a, Estimator(1.0).fit([[1.0, 2.0]], [0]))  # the same content: the same model
    assert calls == list(range(5, 20))
    assert messages == []


def test_a_model_file_is_known_by_its_content(tmp_path: Path) -> None:
    """The same path with other weights in it is another model; the same bytes are the same one."""
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"A" * 1000)
    calls: list[int] = []
    fail_at: list[int | None] = [5]
    evaluate = scorer(calls, fail_at)
    with pytest.raises(RuntimeError):
        evaluate(str(weights), list(range(20)))
    weights.write_bytes(b"B" * 1000)
    calls.clear()
    fail_at[0] = None
    evaluate(str(weights), list(range(20)))
    assert calls == list(range(20))


def test_a_model_configuration_is_known_by_its_values() -> None:
    """A mapping of plain values (an API model's settings): other values are another model, equal ones the same."""
    calls, messages = crash_then_run({"name": "m", "temperature": 0.0}, {"name": "m", "temperature": 0.7})
    assert calls == list(range(20))
    assert messages == []
    calls, messages = crash_then_run({"name": "m", "temperature": 0.0}, {"temperature": 0.0, "name": "m"})
    assert calls == list(range(5, 20))
    assert messages == []


def test_a_model_with_no_stable_identity_is_refused_at_the_start() -> None:
    """An object with no fingerprint: one line at the start of the first run, and no later run continues it."""

    class Opaque:
        pass

    calls: list[int] = []
    fail_at: list[int | None] = [5]
    evaluate = scorer(calls, fail_at)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            evaluate(Opaque(), list(range(20)))
    messages = said(caught)
    assert len(messages) == 1, messages
    assert "cannot be resumed" in messages[0]
    assert "Opaque" in messages[0]
    assert "no stable identity" in messages[0]
    calls.clear()
    fail_at[0] = None
    evaluate(Opaque(), list(range(20)))
    assert calls == list(range(20))
    assert not list(tracked_root().glob("resume/*.json"))  # no pointer that no call could ever match


def test_the_resume_line_says_what_it_matched(capsys: pytest.CaptureFixture[str]) -> None:
    """The resuming line names the task, the model (its fingerprint) and the dataset with its length."""
    calls: list[int] = []
    fail_at: list[int | None] = [5]

    @tracked_eval(resume=True, flush_interval=0.05, task_name="matched")
    def evaluate(model: Any, dataset: list[int]) -> Iterator[dict[str, float]]:
        for x in dataset:
            if x == fail_at[0]:
                raise RuntimeError("crash")
            calls.append(x)
            yield {"acc": 1.0}

    with pytest.raises(RuntimeError):
        evaluate("gpt-test", list(range(20)))
    fail_at[0] = None
    capsys.readouterr()
    evaluate("gpt-test", list(range(20)))
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "resuming" in line]
    assert "after example 5" in line
    assert "task matched" in line
    assert "model gpt-test" in line
    assert "dataset builtins.list of 20 examples" in line


@pytest.mark.torch
def test_two_torch_modules_of_one_architecture_are_two_evaluations(capsys: pytest.CaptureFixture[str]) -> None:
    """Model B (same class, same size, other weights) is never resumed from model A's run; A is."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    calls, messages = crash_then_run(a, b)
    assert calls == list(range(20))
    assert messages == []
    same = torch.nn.Linear(4, 2)
    same.load_state_dict(a.state_dict())
    calls, messages = crash_then_run(a, same)
    assert calls == list(range(5, 20))
    assert messages == []
