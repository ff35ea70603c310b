"""Settings of one decorated evaluation: argument > environment variable > default.

The environment is read when the evaluation is *called*, not when it is
decorated, so code decorated at import time honours variables set later
(a test, a notebook cell, a CI job).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NamedTuple, TypedDict

from .errors import SettingsError
from .rules import (
    BY_TYPE,
    Count,
    InitArgs,
    NonNegative,
    OutputUri,
    Progress,
    Rule,
    Seconds,
    Shard,
    Step,
    Tags,
    TaskType,
)
from .secrets import scrub
from .values import encodable

ENV_PREFIX = "TRACKED_"


class Settings(NamedTuple):
    """Everything a run needs to know; one immutable object instead of loose kwargs.

    (A NamedTuple rather than a dataclass: dataclasses imports inspect,
    which would double the cost of ``import tracked``.)

    Each field can also be set with the environment variable ``TRACKED_<FIELD>``
    (``TRACKED_PROJECT``, ``TRACKED_OFFLINE``, ...); an argument to
    ``@tracked_eval(...)`` wins over the environment.

    This class is the one definition of the options: the decorator's
    arguments (``Options`` below, checked against it by the tests), their
    checks and environment variables (each field's type, and its ``Rule``
    where the type alone does not say enough) and the documentation's
    options table (generated from the fields and their docstrings).
    """

    enabled: bool = True
    """False (``TRACKED_ENABLED=0``): nothing is recorded, streamed or printed; the call still returns the
    same kind of result (an ``EvalResult`` of what was counted)."""
    project: str = "tracked"
    """ClearML project of a task that tracked creates."""
    task_name: str | None = None
    """ClearML task name; default: the function's qualified name."""
    offline: bool | None = None
    """None: offline exactly when no ClearML server is configured."""
    progress_title: str = "Training Progress"
    """Title of the per-example progress chart (SCALARS)."""
    table_title: str = "Final Metrics"
    """Title of the final-metrics table (PLOTS)."""
    default_metric: str = "score"
    """Series name for items yielded as bare numbers."""
    lazy: bool = False
    """A decorated generator is returned unstarted; the caller iterates it."""
    model_arg: str = "model"
    """Parameter whose argument is the model (size reported as model_size_bytes)."""
    dataset_arg: str = "dataset"
    """Parameter whose argument is the dataset (its len() is dataset_num_eval)."""
    max_points: Annotated[int, Count] = 5000
    """At most this many points per progress series; beyond it, each point is the mean of a contiguous range of
    examples.
    """
    console_examples: Annotated[int, NonNegative] = 3
    """How many examples (with their details) the console summary shows."""
    verbose: bool = True
    """Print the summary and the offline-session location to stdout."""
    server_timeout: Annotated[float, Seconds] = 5.0
    """Seconds to wait for a configured ClearML server before falling back to an offline session (ClearML itself
    would retry for hours).
    """
    progress: Annotated[str, Progress] = "auto"
    """Progress display while the run goes: "auto" (a bar on a terminal or in a notebook, plain status lines
    elsewhere; only for runs longer than a couple of seconds), "on" (from the first example), "off".
    """
    status_interval: Annotated[float, Seconds] = 30.0
    """Seconds between two plain status lines where output is not a terminal."""
    flush_interval: Annotated[float, Seconds] = 3.0
    """Seconds between two flushes of the run while it goes: the chart streamed to ClearML, the examples made
    durable on disk (lost at most, on a crash).
    """
    resume: bool = False
    """Continue the previous run of the same evaluation if it did not complete."""
    max_metrics: Annotated[int, Count] = 1000
    """Distinct metric names at most; later new names are kept as details (a metric per example id would take
    memory N x N).
    """
    metrics: tuple[str, ...] = ()
    """Fields that are metrics (averaged); when given, every other field is a detail."""
    details: tuple[str, ...] = ()
    """Fields that are details (kept as text) even when numeric: labels, classes, ids."""
    distributed: bool = True
    """Under torch.distributed, gather every rank's examples into one run (reported by rank 0)."""
    gather_timeout: Annotated[float, Seconds] = 600.0
    """Seconds the ranks wait for each other when the call ends, before failing with a clear error."""
    id_field: str = ""
    """A detail (or metric) identifying each example: the global order of gathered ranks and merged shards, and
    duplicates (DistributedSampler's padding) counted once. "" for none.
    """
    shard: Annotated[str, Shard] = ""
    """This run is one shard of an evaluation run apart (Slurm arrays, Ray tasks): "INDEX/COUNT", as
    ``shard=(index, count)``, or "slurm" (SLURM_ARRAY_TASK_ID and _COUNT); ``tracked merge`` joins them.
    """
    cluster_by: str = ""
    """A detail (or metric) whose value groups related examples (a passage id): standard errors and confidence
    intervals are then the clustered ones. "" for none.
    """
    bootstrap: tuple[str, ...] = ()
    """Metrics whose 95% interval is a bootstrap-t (percentile-t; seeded: the same every time) instead of the t
    interval: for skewed metrics (latency, cost), which t intervals under-cover at small samples. Not with
    ``cluster_by``, nor above 10,000 values (where the t interval covers); the output names each interval.
    """
    group_by: str = ""
    """A detail (or metric) to break the statistics down by (a subject, a language). "" for none."""
    task_type: Annotated[str, TaskType] = "testing"
    """ClearML type of a task that tracked creates: "testing" (an evaluation), or any of ClearML's
    ``Task.TaskTypes`` ("training", "inference", ...)."""
    tags: Annotated[tuple[str, ...], Tags] = ()
    """Tags of a task that tracked creates (comma-separated in the environment)."""
    output_uri: Annotated[str | bool | None, OutputUri] = None
    """Where a task that tracked creates uploads its artifacts (the examples): a storage URI (``s3://...``,
    ``gs://...``, ``azure://...``, a shared folder) or True for the ClearML files server; None: ClearML's
    configured default."""
    task_init: Annotated[dict[str, Any] | None, InitArgs] = None
    """Any other ``Task.init`` argument of a task that tracked creates, passed through (``{"continue_last_task":
    True}``; a JSON object in the environment). Arguments tracked sets itself are refused."""
    model_id: str = ""
    """The ClearML model evaluated (its id), when the model argument is not a ClearML ``Model``: linked as the
    task's input model, and the final metrics are reported on it too. "" for none."""
    dataset_id: str = ""
    """The ClearML dataset evaluated (its id), when the dataset argument is not a ClearML ``Dataset``: recorded as
    the parameter ``dataset_id``. "" for none."""
    reproducible: bool = True
    """Record the script section of a task that tracked creates (repository, commit, uncommitted diff, installed
    packages, entry point), so that it can be cloned and re-run by a ClearML agent; detected in the background
    from the call's start."""
    step: Annotated[int | None, Step] = None
    """This evaluation is one of several in a task (an epoch's validation inside training): its final metrics
    are also points at iteration ``step`` of a chart titled by the evaluation's name, and its progress chart,
    tables and examples artifact are kept apart by step (``tracked_eval(step=epoch)(validate)(...)``)."""


FIELDS: tuple[str, ...] = Settings._fields


@functools.cache
def rules() -> dict[str, Rule]:
    """Each option's rule, read from ``Settings``' annotations (once: they are evaluated here)."""
    import typing

    hints = typing.get_type_hints(Settings, include_extras=True)
    found: dict[str, Rule] = {}
    for name in FIELDS:
        hint = hints[name]
        extra = getattr(hint, "__metadata__", ())
        found[name] = extra[0] if extra else BY_TYPE.get(hint, Rule())
    return found


class Options(TypedDict, total=False):
    """The decorator's keyword arguments, as a type checker sees them: the fields of ``Settings`` (with the
    forms each also accepts), ``None`` meaning "not given". ``lazy`` is typed by the decorator itself."""

    enabled: bool | None
    project: str | None
    task_name: str | None
    offline: bool | None
    progress_title: str | None
    table_title: str | None
    default_metric: str | None
    model_arg: str | None
    dataset_arg: str | None
    max_points: int | None
    console_examples: int | None
    verbose: bool | None
    server_timeout: float | None
    progress: str | bool | None
    status_interval: float | None
    flush_interval: float | None
    resume: bool | None
    max_metrics: int | None
    metrics: Sequence[str] | None
    details: Sequence[str] | None
    distributed: bool | None
    gather_timeout: float | None
    id_field: str | None
    shard: tuple[int, int] | str | None
    cluster_by: str | None
    bootstrap: Sequence[str] | None
    group_by: str | None
    task_type: str | None
    tags: Sequence[str] | str | None
    output_uri: str | bool | None
    task_init: Mapping[str, Any] | None
    model_id: str | None
    dataset_id: str | None
    reproducible: bool | None
    step: int | None


def shard_of(settings: Settings) -> tuple[int, int] | None:
    """(index, count) of a sharded run, or None; "slurm" reads the array job's environment."""
    if not settings.shard:
        return None
    if settings.shard == "slurm":
        try:
            first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
            return int(os.environ["SLURM_ARRAY_TASK_ID"]) - first, int(os.environ["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError):
            return None
    index, count = settings.shard.split("/")
    return int(index), int(count)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate decorator arguments once, when the decorator is applied (no I/O)."""
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise TypeError(f"tracked_eval() got unknown option(s): {', '.join(unknown)}")
    checks = rules()
    return {name: checks[name].check(name, value) for name, value in options.items() if value is not None}


#: Options no environment variable sets: ``lazy=True`` changes what a call returns (its generator, not an
#: ``EvalResult``), which the calling code must know; a variable would break it from outside.
CODE_ONLY = ("lazy",)


def resolve(given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """Settings for one call, and the problems met in the environment.

    A bad environment variable must not break the user's evaluation: it is
    reported (by the caller, as a warning) and the default is used instead.
    """
    env = os.environ if environ is None else environ
    checks = rules()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in FIELDS:
        if name in given:
            values[name] = given[name]
            continue
        variable = ENV_PREFIX + name.upper()
        raw = env.get(variable)
        if raw is None:
            continue
        if name in CODE_ONLY:
            problems.append(
                f"{variable}={raw!r} is not read: {name}=True changes what the call returns (its generator, not an "
                f"EvalResult), so only the code sets it (@tracked_eval({name}=True))"
            )
            continue
        try:
            values[name] = checks[name].parse(name, raw)
        except SettingsError as exc:
            problems.append(f"{variable}={raw!r}: {exc}; using the default")
    for name in ("project", "task_name"):  # written into task.json and folder names: a credential redacted, and
        if isinstance(values.get(name), str):  # a lone surrogate (surrogateescape) as its escape (UTF-8 cannot hold it)
            values[name] = encodable(scrub(values[name]))
    return Settings(**values), problems
