"""The progress chart of one metric, built as the values arrive.

Points are streamed while the run goes (to a server, to the session on
disk), so a point, once made, must stay true: each point is the mean of a
*completed* range of consecutive values, placed at the example index of the
range's last value, and never revised. The ranges are planned so that a
series stays bounded:

- length known (``len(dataset)``): ``max_points`` ranges of (nearly) equal
  size over the expected number of values, exactly as if the chart had been
  made at the end; values beyond the expected number go on as below;
- length unknown (a generator, a stream): the first ``max_points / 4``
  values are points of their own, then ranges of 2, 4, 8, ... values,
  ``max_points / 8`` ranges of each width: resolution halves each time the
  run doubles, and a series holds about ``max_points`` points from 10,000
  to 1,000,000 examples (3,000 to 7,300 with the default 5,000).

Beside each point the running mean, the mean of every finite value up to
that example. NaN and infinities are left out of both (ClearML would write
them as 0.0); a range with no finite value makes no point.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: (iterations, values, running-mean iterations, running means): new points of one series.
Points = tuple[IntArray, FloatArray, IntArray, FloatArray]


#: Above this magnitude, sums are taken in extended precision (numpy's longdouble: 80-bit on x86-64 Linux).
_HUGE = 1e290


def _empty_points() -> Points:
    i, f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    return i, f, i, f


class Chart:
    """Turns one metric's values, fed in order and in any slices, into progress points."""

    def __init__(self, max_points: int, expected: int | None) -> None:
        self.max_points = max_points
        self.fed = 0  # values consumed
        # Sums in extended precision: a million values of 1e308 sum past float64's range (their mean does not).
        self.sum = np.longdouble(0.0)  # of every finite value consumed
        self.finite = 0
        # The range being filled: its finite sum and count, how many values, its last example index.
        self._range_sum, self._range_finite, self._range_size, self._range_last = np.longdouble(0.0), 0, 0, -1
        # Planned range ends (exclusive value positions), extended on demand.
        if expected:
            ends = np.linspace(0, expected, min(max_points, expected) + 1).astype(np.int64)[1:]
            self._ends: list[int] = np.unique(ends).tolist()
            width = max(1, math.ceil(expected / max_points))
            self._width, self._left = width * 2, max(1, max_points // 8)
        else:
            self._ends = []
            self._width, self._left = 1, max(1, max_points // 4)
        self._next = 0  # index into _ends of the range being filled

    @property
    def mean(self) -> float:
        """The running mean so far (NaN before any finite value)."""
        return float(self.sum / self.finite) if self.finite else math.nan

    def _end_after(self, k: int) -> int:
        """The k-th planned range end, planning further ranges as needed."""
        while k >= len(self._ends):
            last = self._ends[-1] if self._ends else 0
            self._ends.append(last + self._width)
            self._left -= 1
            if self._left == 0:
                self._width *= 2
                self._left = max(1, self.max_points // 8)
        return self._ends[k]

    def feed(self, indices: IntArray, values: FloatArray) -> Points:
        """Consume the next values (with their example indices); the points of the ranges they complete."""
        n = len(values)
        if n == 0:
            return _empty_points()
        start, stop = self.fed, self.fed + n
        cuts: list[int] = []  # positions in ``values`` where a range ends (exclusive)
        k = self._next
        while (end := self._end_after(k)) <= stop:
            cuts.append(end - start)
            k += 1
        self._next = k
        finite = np.isfinite(values)
        clean = values if finite.all() else np.where(finite, values, 0.0)
        if clean.size and float(np.abs(clean).max()) > _HUGE:  # float64 sums could overflow
            clean = clean.astype(np.longdouble)
        starts = np.array([0, *(c for c in cuts if c < n)], dtype=np.int64)
        sums = np.add.reduceat(clean, starts).astype(np.longdouble)
        counts = np.add.reduceat(finite, starts, dtype=np.int64)
        sums[0] += self._range_sum
        counts[0] += self._range_finite
        done = len(cuts)  # the first ``done`` segments complete ranges; a last one, if any, is the new open range
        range_sums, range_counts = sums[:done], counts[:done]
        at = indices[np.asarray(cuts, dtype=np.int64) - 1] if done else np.empty(0, dtype=np.int64)
        cumulative_sums = self.sum + np.cumsum(range_sums)
        cumulative_counts = self.finite + np.cumsum(range_counts)
        has, seen = range_counts > 0, cumulative_counts > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            points = (
                at[has],
                (range_sums[has] / range_counts[has]).astype(np.float64),
                at[seen],
                (cumulative_sums[seen] / cumulative_counts[seen]).astype(np.float64),
            )
        if done:
            self.sum, self.finite = cumulative_sums[-1], int(cumulative_counts[-1])
        if done < len(sums):  # the tail opens (or continues) the range being filled
            tail_start = cuts[-1] if done else 0
            self._range_sum = sums[-1]
            self._range_finite = int(counts[-1])
            self._range_size = (self._range_size if not done else 0) + n - tail_start
            self._range_last = int(indices[-1])
        else:
            self._range_sum, self._range_finite, self._range_size = np.longdouble(0.0), 0, 0
        self.fed = stop
        return points

    def close(self) -> Points:
        """The run ended: the range being filled becomes the last point (at the last example seen)."""
        if self._range_size == 0:
            return _empty_points()
        s, c, last = self._range_sum, self._range_finite, self._range_last
        self.sum, self.finite = self.sum + s, self.finite + c
        self._range_sum, self._range_finite, self._range_size = np.longdouble(0.0), 0, 0
        at = np.array([last], dtype=np.int64)
        if not c:
            empty = np.empty(0, dtype=np.int64)
            return (empty, np.empty(0), at, np.array([self.mean])) if self.finite else _empty_points()
        return at, np.array([float(s / c)]), at, np.array([self.mean])
