"""One call of a decorated evaluation: timing, counting, aggregating.

The per-example path (``Run.add``) is the hot path: a million examples must
cost about a second in all, so it only appends floats to compact arrays.
Everything else (means, charts, tables, I/O) happens once, in ``Run.end``.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._options import Settings
from ._values import TENSOR_BATCH, InvalidValue, as_detail, as_number, is_scalar_tensor, tensors_to_floats
from ._warn import warn

if TYPE_CHECKING:
    from ._call import CallInfo
    from ._result import EvalResult
    from .sinks import Sink

#: Run states, as recorded in the session (``tracked_status``).
COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"


class Series:
    """One metric's values in yield order: 8 bytes per example while dense.

    Example indices are stored only once the metric skips an example
    (a mapping without that field), so the common case costs no index array.
    Tensors wait in ``pending`` and are moved to the host in batches: one
    device synchronisation per batch instead of one per example.
    """

    __slots__ = ("indices", "pending", "start", "values")

    def __init__(self, start: int) -> None:
        self.start = start
        self.values = array("d")
        self.indices: array[int] | None = None
        self.pending: list[tuple[int, Any]] = []

    def append(self, index: int, value: float) -> None:
        if self.pending:
            self.flush()
        if self.indices is None:
            if index == self.start + len(self.values):
                self.values.append(value)
                return
            self.indices = array("q", range(self.start, self.start + len(self.values)))
        self.indices.append(index)
        self.values.append(value)

    def defer(self, index: int, tensor: Any) -> None:
        self.pending.append((index, tensor))
        if len(self.pending) >= TENSOR_BATCH:
            self.flush()

    def flush(self) -> None:
        """Move pending tensors to the host, all at once, and append their values."""
        pending, self.pending = self.pending, []
        values = tensors_to_floats([t for _, t in pending])
        first, last = pending[0][0], pending[-1][0]
        if self.indices is None and first == self.start + len(self.values) and last - first == len(pending) - 1:
            self.values.extend(values)  # the common case: consecutive examples
            return
        for (index, _), value in zip(pending, values, strict=True):
            self.append(index, value)

    def value_at(self, index: int) -> float | None:
        """This metric's value for example ``index``, or None when the example lacks it."""
        if self.indices is None:
            pos = index - self.start
            return self.values[pos] if 0 <= pos < len(self.values) else None
        pos = bisect_left(self.indices, index)
        return self.values[pos] if pos < len(self.indices) and self.indices[pos] == index else None


class Run:
    """Collects one evaluation call; ``end`` turns it into a result and reports it."""

    def __init__(self, settings: Settings, name: str, call: CallInfo, sinks: list[Sink]) -> None:
        self.settings = settings
        self.name = name
        self.call = call
        self.sinks = sinks
        self.count = 0
        self.series: dict[str, Series] = {}
        #: (example index, field -> text) for examples that have details.
        self.details: list[tuple[int, dict[str, str]]] = []
        #: field (None: the whole item) -> (number of values skipped, first message).
        self.skipped: dict[str | None, tuple[int, str]] = {}
        self.returned: Any = None
        self.status = "running"
        self.error: BaseException | None = None
        self.result: EvalResult | None = None
        for sink in sinks:
            sink.start(self)
        # The clock starts after the sinks: duration_seconds is the evaluation's
        # own time, comparable between runs, not ClearML's start-up (~1 s at first).
        self._started = time.perf_counter()
        self._ended: float | None = None
        from . import _lifecycle  # signal/threading/atexit: at the first run, not at import

        _lifecycle.opened(self)

    @property
    def duration(self) -> float:
        end = time.perf_counter() if self._ended is None else self._ended
        return end - self._started

    # -- the hot path -------------------------------------------------------
    def add(self, item: Any) -> None:
        """Record one yielded example (index = number of examples before it)."""
        index = self.count
        self.count = index + 1
        if type(item) is float:
            self._metric(self.settings.default_metric, index, item)
        elif isinstance(item, Mapping):
            self._add_mapping(index, item)
        else:
            self._add_value(index, None, self.settings.default_metric, item)

    def _metric(self, name: str, index: int, value: float) -> None:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = Series(index)
        series.append(index, value)

    def _add_mapping(self, index: int, item: Mapping[Any, Any]) -> None:
        details: dict[str, str] | None = None
        for key, value in item.items():
            if type(value) is float:  # the common case, kept to one type check
                self._metric(key if type(key) is str else str(key), index, value)
            elif value is not None:  # None: this example has no such metric
                name = key if type(key) is str else str(key)
                if self._add_value(index, name, name, value) is False:
                    if details is None:
                        details = {}
                    details[name] = as_detail(value)
        if details:
            self.details.append((index, details))

    def _add_value(self, index: int, field: str | None, name: str, value: Any) -> bool:
        """Record a value that is not a plain float; False when it is not numeric (a detail)."""
        if is_scalar_tensor(value):
            series = self.series.get(name)
            if series is None:
                series = self.series[name] = Series(index)
            series.defer(index, value)
            return True
        try:
            number = as_number(value)
        except InvalidValue as exc:
            self._skip(index, field, str(exc))
            return True
        if number is None:
            if field is None:
                self._skip(index, None, f"{type(value).__name__} is neither a number nor a mapping of metric -> number")
            return field is None
        self._metric(name, index, number)
        return True

    def _skip(self, index: int, field: str | None, message: str) -> None:
        # Invalid values are skipped with a warning rather than raised: an
        # hours-long evaluation must not die at example 900,000 over one value.
        count, first = self.skipped.get(field, (0, ""))
        if count == 0:
            where = f"example {index}" if field is None else f"example {index}, field {field!r}"
            first = f"{self.name}: {where}: {message}; value skipped"
            warn(f"{first} (further problems with this field are counted, not repeated)", stacklevel=5)
        self.skipped[field] = (count + 1, first)

    # -- the end ------------------------------------------------------------
    def end(self, status: str, returned: Any = None, error: BaseException | None = None) -> EvalResult:
        """Stop the clock, compute the final metrics and hand them to every sink once."""
        from ._result import EvalResult
        from ._summary import final_metrics

        if self.result is not None:
            return self.result
        from . import _lifecycle

        _lifecycle.closed(self)
        self._ended = time.perf_counter()
        self.status, self.returned, self.error = status, returned, error
        for series in self.series.values():
            if series.pending:
                series.flush()
        metrics = final_metrics(self)
        self.result = EvalResult(self, metrics)
        for sink in self.sinks:
            sink.finish(self, self.result)
        return self.result
