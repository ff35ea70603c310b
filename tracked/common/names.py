"""The names tracked gives its own values, and what becomes of a user's field that has one of them.

A run's final metrics hold, beside the means of the yielded metrics, values
tracked measures itself (``num_examples``, ``duration_seconds`` ...), and
each metric has a standard error, a count of non-finite values and a
running-mean series of tracked's. A *yielded* field with one of these names
would silently take their place (a per-example latency called
``duration_seconds`` replacing the run's duration), so it is recorded as
``<name> (yielded)`` (or ``<name> (yielded 2)`` ..., a name no field of the
run has: a field literally named ``<name> (yielded)`` keeps its own
series), with one warning. A *returned* final metric keeps its
name and wins, as the function said so; tracked then leaves out its own
single value of that name.
"""

from __future__ import annotations

#: The final metrics tracked adds itself (unless the function returned its own).
OWN_METRICS = frozenset((
    "num_examples", "duration_seconds", "model_size_bytes", "dataset_num_eval", "skipped_values", "num_ranks",
    "num_shards",
))  # fmt: skip
#: What tracked names after each metric: its standard error and non-finite count (single values, final metrics).
OWN_SUFFIXES = ("_stderr", "_nonfinite_count")
#: The series of a metric's running mean, beside its own in the progress chart.
RUNNING_MEAN = "{metric} (running mean)"
_RUNNING_SUFFIX = RUNNING_MEAN.format(metric="")
#: What a yielded field with one of tracked's names is recorded as.
YIELDED = "{name} (yielded)"


def is_own(name: str) -> bool:
    """Whether ``name`` is one tracked gives its own values (see the module's docstring)."""
    return name in OWN_METRICS or name.endswith(OWN_SUFFIXES) or name.endswith(_RUNNING_SUFFIX)
