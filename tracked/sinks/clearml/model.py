"""The ClearML model and dataset a run evaluated: the model linked as the task's input model, and the run's
final metrics reported on the model as well, so that the model registry shows how each model scored.

Models live on a server: offline, the ids are only recorded as parameters (``model_id``, ``dataset_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearml import Task


def ids(clearml_model: str, clearml_dataset: str) -> dict[str, str]:
    """The parameters that name what was evaluated (none of them when nothing was)."""
    return {k: v for k, v in (("model_id", clearml_model), ("dataset_id", clearml_dataset)) if v}


def link_model(task: Task, model_id: str) -> None:
    """The model as the task's input model (its design and labels left as they are)."""
    task.set_input_model(model_id=model_id, update_task_design=False, update_task_labels=False)


def report_on_model(model_id: str, metrics: Mapping[str, Any], named: Any) -> None:
    """Each finite final metric as a single value of the model, sent before returning."""
    from clearml import Model

    from ...common.values import finite_number

    model = Model(model_id)
    for name, value in metrics.items():
        number = finite_number(value)
        if number is not None:
            model.report_single_value(name=named(name), value=number)
    reporter = model._reporter
    if reporter is not None:
        reporter.flush()
        reporter.wait_for_events()
