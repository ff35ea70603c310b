"""A run followed while it goes: a background thread hands the sinks what the run gained.

The evaluation's own thread only appends scores (``Run.add``); this thread
reads what was appended since it last looked, turns it into progress points
(``Chart``) and, every ``flush_interval`` seconds, tells each sink
(``Sink.progress``): the ClearML sink streams the points, the journal makes
the examples durable. A sink with a ``tick`` (the progress bar) is told more
often. A slow disk or server slows this thread only: the scores wait in the
run's own storage, which is the queue, and are handed over once it can go on.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..common.warn import warn
from .chart import Chart, Points
from .details import Block, Cursor, Row
from .sink import Update
from .storage import CHUNK

if TYPE_CHECKING:
    from .chart import FloatArray, IntArray
    from .run import Run
    from .sink import Sink

#: Seconds between two ticks of a sink that draws (the progress bar).
TICK_S = 0.5
#: Seconds the run's end waits for a flush in progress before leaving it behind.
STUCK_S = 10.0


def _join(parts: list[Any], dtype: Any) -> Any:
    if not parts:
        return np.empty(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class Live:
    """Gathers what a run appends, and hands it to its sinks at their intervals."""

    def __init__(self, run: Run, first: list[Sink] | None = None) -> None:
        self.run = run
        #: The order sinks are told in: ``first`` (the journal: the chart never shows examples it lacks), then the rest.
        self.sinks = [*(first or []), *(s for s in run.sinks if s not in (first or []))]
        self.charts: dict[str, Chart] = {}
        self._gathered: dict[str, int] = {}  # values fed to the charts, per metric
        self._handed: dict[str, int] = {}  # values handed to the sinks, per metric
        self._details_seen = Cursor()
        #: Examples gathered: every value of every example before this one has been read.
        self.examples = 0
        self._pending_points: dict[str, list[Points]] = {}
        self._pending_times: dict[str, list[tuple[FloatArray, FloatArray]]] = {}
        # The last look at the run: (examples whole by then, epoch seconds). The examples between two looks
        # were scored between their times; no clock is read per example (see ``_stamp``).
        self._seen: tuple[int, float] = (run.count, time.time())
        self._window: tuple[int, float, int, float] = (*self._seen, *self._seen)
        self._pending_details: list[Row | Block] = []
        self._tickers: list[Any] = [s for s in run.sinks if getattr(s, "tick", None) is not None]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one gatherer at a time (the thread, or the run's end)
        self._flushing = threading.Lock()  # one flush at a time
        self._failed: set[int] = set()

    # -- the thread ----------------------------------------------------------
    def start(self) -> None:
        interval = self.run.settings.flush_interval
        ticking = any(s.ticking for s in self._tickers)
        tick = min(TICK_S, interval) if ticking else interval
        self._thread = threading.Thread(target=self._loop, args=(tick, interval), name="tracked-live", daemon=True)
        self._thread.start()

    def _loop(self, tick: float, interval: float) -> None:
        next_flush = time.monotonic() + interval
        while not self._stop.wait(tick):
            try:
                self.gather()
                for sink in self._tickers:
                    sink.tick(self.run, self)
                if time.monotonic() >= next_flush:
                    self.flush()
                    next_flush = time.monotonic() + interval
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug of ours
                self._report(0, f"following the run failed ({type(exc).__name__}: {exc})")

    def stop(self) -> None:
        """Stop the thread (waiting for a flush in progress, at most a few seconds)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STUCK_S)

    # -- gathering -----------------------------------------------------------
    def gather(self, final: bool = False) -> None:
        """Read what the run appended since the last look; feed the charts.

        Only whole examples are taken: one the evaluation is adding right now,
        and any whose tensors still wait for their batch, are left for the
        next look, so what the sinks record is always a prefix of
        examples with all their values (what ``resume`` continues from).
        """
        run = self.run
        with self._lock:
            limit = run.count  # read before asking whether an example is halfway recorded: see Run.adding
            if not final and run.adding():
                limit -= 1
            for series in list(run.series.values()):
                pending = series.pending
                if pending and not final:
                    series.batch = 0  # tensors waiting for a batch: the evaluation moves them at its next one
                    limit = min(limit, pending[0][0])
            limit = max(limit, self.examples)
            now = time.time()
            self._window = (*self._seen, limit, now)
            self._seen = (limit, now)
            for name, series in list(run.series.items()):
                lo, hi = self._gathered.get(name, 0), series.before(limit)
                if hi <= lo:
                    continue
                chart = self.charts.get(name)
                if chart is None:
                    chart = self.charts[name] = Chart(run.settings.max_points, run.expected)
                points = self._pending_points.setdefault(name, [])
                times = self._pending_times.setdefault(name, [])
                for start in range(lo, hi, CHUNK):  # a chunk at a time: no copy of a whole long run
                    made = chart.feed(*series.read(start, min(start + CHUNK, hi)))
                    points.append(made)
                    times.append((self._stamp(made[0]), self._stamp(made[2])))
                self._gathered[name] = hi
            entries = run.details.entries_from(self._details_seen, limit, run.settle)
            self._pending_details.extend(entries)
            self.examples = limit

    def _stamp(self, iterations: IntArray) -> FloatArray:
        """When the examples at ``iterations`` were scored, as far as the looks at the run tell.

        Between two looks (every tick of this thread, 0.5 s with a progress
        bar, else every flush) the examples that became whole are spread
        evenly over the interval, the last one at the second look: off by at
        most the interval, never later than the example was seen done. An
        example seen at an earlier look (the last point of a range closed at
        the end) gets that look's time.
        """
        first, then, last, now = self._window
        share = (iterations.astype(np.float64) + 1 - first) / max(last - first, 1)
        return np.asarray(then + np.clip(share, 0.0, 1.0) * (now - then), dtype=np.float64)

    def take(self, final: bool = False) -> Update:
        """Everything gathered since the last update (with ``final``: the last chart points too)."""
        with self._lock:
            update = Update(count=self.examples, duration=self.run.duration, time=time.time(), final=final)
            for name, hi in self._gathered.items():
                lo = self._handed.get(name, 0)
                if hi > lo:
                    update.new[name] = (lo, hi)
                    update.series[name] = self.run.series[name]
                    self._handed[name] = hi
            names = list(self.charts) if final else list(self._pending_points)
            for name in names:
                parts = self._pending_points.get(name, [])
                stamps = self._pending_times.get(name, [])
                if final:
                    last = self.charts[name].close()
                    parts, stamps = [*parts, last], [*stamps, (self._stamp(last[0]), self._stamp(last[2]))]
                iterations, values, mean_iterations, means = (
                    _join([p[k] for p in parts], np.int64 if k % 2 == 0 else float) for k in range(4)
                )
                update.points[name] = (iterations, values, mean_iterations, means)
                update.times[name] = (_join([t[0] for t in stamps], float), _join([t[1] for t in stamps], float))
            update.details, self._pending_details = self._pending_details, []
            self._pending_points.clear()
            self._pending_times.clear()
        return update

    def flush(self, final: bool = False) -> None:
        """Hand every sink what was gathered; a sink that fails warns once and the others go on.

        One flush at a time: the run's end waits for a flush the thread is in
        (a slow disk or server), but not forever: a flush stuck past
        ``STUCK_S`` is left behind, with a warning, rather than hang the end.
        """
        # At the end, ``stop`` has already waited up to STUCK_S for the thread: a flush still held is stuck.
        if not self._flushing.acquire(timeout=0.1 if final else -1):
            self._report(1, f"the last flush is stuck (a disk or server not answering for {STUCK_S:g} s)")
            return
        try:
            if not final:  # at the end, the run has caught up already (``Run.seal``)
                self.run.catch_up()
            self.gather(final)
            update = self.take(final)
            for sink in self.sinks:
                try:
                    sink.progress(self.run, update)
                except Exception as exc:  # noqa: BLE001 - sinks should not raise; if one does, the run goes on
                    self._report(id(sink), f"{type(sink).__name__} failed ({type(exc).__name__}: {exc})")
        finally:
            self._flushing.release()

    def means(self) -> dict[str, float]:
        """Each metric's running mean so far (as of the last gather)."""
        return {name: chart.mean for name, chart in self.charts.items()}

    def _report(self, key: int, message: str) -> None:
        if key not in self._failed:
            self._failed.add(key)
            warn(f"{self.run.name}: {message}; the evaluation goes on", stacklevel=2)
