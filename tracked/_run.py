"""One call of a decorated evaluation: timing, counting, aggregating.

The per-example path (``Run.add``) is the hot path: a million examples must
cost about a second in all, so it only appends floats to compact arrays.
Everything else (means, charts, tables, I/O) happens once, in ``Run.end``.
"""

from __future__ import annotations

import mmap
import time
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._options import Settings
from ._values import TENSOR_BATCH, InvalidValue, as_detail, as_number, is_scalar_tensor, tensors_to_floats
from ._warn import warn

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ._call import CallInfo
    from ._result import EvalResult
    from .sinks import Sink

#: Run states, as recorded in the session (``tracked_status``).
COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"


#: Values per storage chunk (512 KiB). Each chunk is its own anonymous memory
#: map: no chunk is ever moved (a growing array is copied on every resize),
#: and a chunk released when the run ends goes straight back to the system
#: (freed heap blocks do not), so a run's memory stays at its data.
CHUNK = 1 << 16


class Series:
    """One metric's values in yield order: 8 bytes per example while dense.

    Values fill fixed-size chunks; ``freeze`` joins them into one numpy
    array when the run ends, releasing each chunk as it is copied. Example
    indices are stored only once the metric skips an example (a mapping
    without that field), so the common case costs no index array. Tensors
    wait in ``pending`` and are moved to the host in batches: one device
    synchronisation per batch instead of one per example.
    """

    __slots__ = ("chunks", "frozen", "indices", "pending", "pos", "size", "start", "view")

    def __init__(self, start: int) -> None:
        self.start = start
        self.size = 0
        self.chunks: list[mmap.mmap] = []
        self.view: memoryview[float] | None = None  # the last chunk, as doubles
        self.pos = CHUNK  # position in the last chunk; full: the next value opens a chunk
        self.indices: array[int] | None = None
        self.pending: list[tuple[int, Any]] = []
        self.frozen: npt.NDArray[np.float64] | None = None

    def append(self, index: int, value: float) -> None:
        if self.pending:
            self.flush()
        if self.indices is not None:
            self.indices.append(index)
        elif index != self.start + self.size:  # the first gap: from now on, indices are kept
            self.indices = array("q", range(self.start, self.start + self.size))
            self.indices.append(index)
        pos = self.pos
        if pos == CHUNK:
            chunk = mmap.mmap(-1, CHUNK * 8)
            self.chunks.append(chunk)
            self.view = memoryview(chunk).cast("d")
            pos = 0
        self.view[pos] = value  # type: ignore[index]
        self.pos = pos + 1
        self.size += 1

    def defer(self, index: int, tensor: Any) -> None:
        self.pending.append((index, tensor))
        if len(self.pending) >= TENSOR_BATCH:
            self.flush()

    def flush(self) -> None:
        """Move pending tensors to the host, all at once, and append their values."""
        pending, self.pending = self.pending, []
        for (index, _), value in zip(pending, tensors_to_floats([t for _, t in pending]), strict=True):
            self.append(index, value)

    def freeze(self) -> npt.NDArray[np.float64]:
        """All values as one array, made once when the run has ended; the chunks are released."""
        if self.frozen is None:
            import numpy as np

            if self.pending:
                self.flush()
            if self.view is not None:
                self.view.release()
                self.view = None
            out = np.empty(self.size, dtype=np.float64)
            chunks, self.chunks = self.chunks, []
            chunks.reverse()
            pos = 0
            while chunks:
                chunk = chunks.pop()
                count = min(CHUNK, self.size - pos)
                out[pos : pos + count] = np.frombuffer(chunk, dtype=np.float64, count=count)
                pos += count
                chunk.close()  # back to the system now, so the copy never doubles the memory
            self.frozen, self.pos = out, CHUNK
        return self.frozen

    def value_at(self, index: int) -> float | None:
        """This metric's value for example ``index`` (once the run has ended), or None when it lacks one."""
        if self.indices is None:
            pos = index - self.start
        else:
            pos = bisect_left(self.indices, index)
            if pos >= len(self.indices) or self.indices[pos] != index:
                return None
        return float(self.freeze()[pos]) if 0 <= pos < self.size else None


def status_of(exc: BaseException) -> str:
    """'failed' for errors; 'stopped' for interrupts, exits and cancellation."""
    return FAILED if isinstance(exc, Exception) else STOPPED


def finish(run: Run, status: str, returned: Any = None, error: BaseException | None = None) -> EvalResult:
    """End the run; a failure in tracked's own bookkeeping is a warning, never the caller's problem."""
    try:
        return run.end(status, returned, error)
    except Exception as exc:  # noqa: BLE001 - never break the user's evaluation
        from ._result import EvalResult

        warn(f"{run.name}: reporting the run failed ({type(exc).__name__}: {exc}); returning what was counted")
        run.status, run.returned, run.error = status, returned, error
        run.result = EvalResult(run, {"num_examples": run.count, "duration_seconds": run.duration}, status, returned)
        return run.result


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

    def _series(self, name: str, index: int) -> Series:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = Series(index)
        return series

    def _metric(self, name: str, index: int, value: float) -> None:
        self._series(name, index).append(index, value)

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
        """Record a value that is not a plain float; False when it is a field's detail (not numeric)."""
        if is_scalar_tensor(value):
            self._series(name, index).defer(index, value)
            return True
        try:
            number = as_number(value)
        except InvalidValue as exc:
            self._skip(index, field, str(exc))
            return True
        if number is not None:
            self._metric(name, index, number)
            return True
        if field is not None:
            return False
        self._skip(index, None, f"{type(value).__name__} is neither a number nor a mapping of metric -> number")
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
            series.freeze()
        metrics = final_metrics(self)
        self.result = EvalResult(self, metrics)
        for sink in self.sinks:
            sink.finish(self, self.result)
        return self.result
