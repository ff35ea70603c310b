"""Settings of one decorated evaluation: argument > environment variable > default.

The environment is read when the evaluation is *called*, not when it is
decorated, so code decorated at import time honours variables set later
(a test, a notebook cell, a CI job).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._values import encodable

ENV_PREFIX = "TRACKED_"


class Settings(NamedTuple):
    """Everything a run needs to know; one immutable object instead of loose kwargs.

    (A NamedTuple rather than a dataclass: dataclasses imports inspect,
    which would double the cost of ``import tracked``.)

    Each field can also be set with the environment variable ``TRACKED_<FIELD>``
    (``TRACKED_PROJECT``, ``TRACKED_OFFLINE``, ...); an argument to
    ``@tracked_eval(...)`` wins over the environment.
    """

    #: False: the function runs exactly as undecorated (``TRACKED_ENABLED=0``).
    enabled: bool = True
    #: ClearML project of a task that tracked creates.
    project: str = "tracked"
    #: ClearML task name; default: the function's qualified name.
    task_name: str | None = None
    #: None: offline exactly when no ClearML server is configured.
    offline: bool | None = None
    #: Title of the per-example progress chart (SCALARS).
    progress_title: str = "Training Progress"
    #: Title of the final-metrics table (PLOTS).
    table_title: str = "Final Metrics"
    #: Series name for items yielded as bare numbers.
    default_metric: str = "score"
    #: A decorated generator is returned unstarted; the caller iterates it.
    lazy: bool = False
    #: Parameter whose argument is the model (size reported as model_size_bytes).
    model_arg: str = "model"
    #: Parameter whose argument is the dataset (its len() is dataset_num_eval).
    dataset_arg: str = "dataset"
    #: At most this many points per progress series; beyond it, each point is
    #: the mean of a contiguous range of examples.
    max_points: int = 5000
    #: How many examples (with their details) the console summary shows.
    console_examples: int = 3
    #: Print the summary and the offline-session location to stdout.
    verbose: bool = True
    #: Seconds to wait for a configured ClearML server before falling back to
    #: an offline session (ClearML itself would retry for hours).
    server_timeout: float = 5.0
    #: Progress display while the run goes: "auto" (a bar on a terminal or in
    #: a notebook, plain status lines elsewhere; only for runs longer than a
    #: couple of seconds), "on" (from the first example), "off".
    progress: str = "auto"
    #: Seconds between two plain status lines where output is not a terminal.
    status_interval: float = 30.0
    #: Seconds between two flushes of the run while it goes: the chart streamed
    #: to ClearML, the examples made durable on disk (lost at most, on a crash).
    flush_interval: float = 3.0
    #: Continue the previous run of the same evaluation if it did not complete.
    resume: bool = False
    #: Distinct metric names at most; later new names are kept as details (a metric per example id
    #: would take memory N x N).
    max_metrics: int = 1000
    #: Fields that are metrics (averaged); when given, every other field is a detail.
    metrics: tuple[str, ...] = ()
    #: Fields that are details (kept as text) even when numeric: labels, classes, ids.
    details: tuple[str, ...] = ()
    #: Under torch.distributed, gather every rank's examples into one run (reported by rank 0).
    distributed: bool = True
    #: Seconds the ranks wait for each other when the call ends, before failing with a clear error.
    gather_timeout: float = 600.0
    #: A detail (or metric) identifying each example: the global order of gathered ranks and merged
    #: shards, and duplicates (DistributedSampler's padding) counted once. "" for none.
    id_field: str = ""
    #: This run is one shard of an evaluation run apart (Slurm arrays, Ray tasks): "INDEX/COUNT", as
    #: ``shard=(index, count)``, or "slurm" (SLURM_ARRAY_TASK_ID and _COUNT); ``tracked merge`` joins them.
    shard: str = ""
    #: A detail (or metric) whose value groups related examples (a passage id): standard errors and
    #: confidence intervals are then the clustered ones. "" for none.
    cluster_by: str = ""
    #: A detail (or metric) to break the statistics down by (a subject, a language). "" for none.
    group_by: str = ""


FIELDS: tuple[str, ...] = Settings._fields
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


#: Longer than any evaluation; past it a timer cannot be set (and inf is no interval).
_FOREVER_S = 10**7


class SettingsError(ValueError):
    """An option or environment variable has a value tracked cannot use."""


_PROGRESS = {"auto": "auto", "on": "on", "off": "off", **dict.fromkeys(_TRUE, "on"), **dict.fromkeys(_FALSE, "off")}


def _progress(value: Any, where: str) -> str:
    word = str(value).strip().lower() if not isinstance(value, bool) else ("on" if value else "off")
    if word not in _PROGRESS:
        raise SettingsError(f"{where}: expected auto, on or off")
    return _PROGRESS[word]


def _parse(name: str, raw: str) -> Any:
    kind = type(Settings._field_defaults[name])
    if name == "offline":
        if raw.strip().lower() in ("", "auto"):
            return None
        kind = bool
    if name == "task_name":
        return raw
    if name == "progress":
        return _progress(raw, f"{ENV_PREFIX}PROGRESS={raw!r}")
    if name == "shard":
        return _shard_option(raw) if raw.strip() else ""
    if kind is bool:
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a number") from None
    return raw


def _shard_option(value: Any) -> str:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = f"{value[0]}/{value[1]}"
    text = str(value).strip().lower()
    if text == "slurm":
        return text
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise SettingsError(f"shard must be (index, count), 'INDEX/COUNT' or 'slurm', got {value!r}") from None
    if not 0 <= index < count:
        raise SettingsError(f"shard {index}/{count}: the index must be at least 0 and below the count")
    return f"{index}/{count}"


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
    given = {k: v for k, v in options.items() if v is not None}
    if "progress" in given:
        given["progress"] = _progress(given["progress"], f"progress={given['progress']!r}")
    for name in ("flush_interval", "status_interval", "server_timeout", "gather_timeout"):
        value = given.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < _FOREVER_S
        ):
            raise SettingsError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    if "shard" in given:
        given["shard"] = _shard_option(given["shard"])
    for name in ("metrics", "details"):
        value = given.get(name)
        if isinstance(value, str):
            given[name] = value = (value,)
        if value is not None:
            if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f"{name} must be a list of field names, got {value!r}")
            given[name] = tuple(value)
    for name in ("max_points", "console_examples", "max_metrics"):
        value = given.get(name)
        positive = name != "console_examples"
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < int(positive)):
            raise SettingsError(f"{name} must be a {'positive' if positive else 'non-negative'} integer, got {value!r}")
    return given


def resolve(given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """Settings for one call, and the problems met in the environment.

    A bad environment variable must not break the user's evaluation: it is
    reported (by the caller, as a warning) and the default is used instead.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in FIELDS:
        if name in given:
            values[name] = given[name]
            continue
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        try:
            values[name] = _parse(name, raw)
        except SettingsError as exc:
            problems.append(f"{exc}; using the default")
    for name in (
        "max_points",
        "console_examples",
        "max_metrics",
        "server_timeout",
        "flush_interval",
        "status_interval",
        "gather_timeout",
    ):
        if name in values and name not in given:
            try:
                check_options({name: values[name]})
            except SettingsError as exc:
                problems.append(f"{ENV_PREFIX}{name.upper()}: {exc}; using the default")
                del values[name]
    for name in ("project", "task_name"):  # a lone surrogate (a file name decoded with surrogateescape) as its escape:
        if isinstance(values.get(name), str):  # ClearML could not create the task, nor tracked save the run
            values[name] = encodable(values[name])
    return Settings(**values), problems
