"""Where a run keeps its scores: per metric, in fixed-size chunks, in yield order.

The evaluation's thread appends (``Series.append``: the hot path); the live
thread reads what was appended (``Series.read``) while it goes. Values below
``size`` are never changed again, so a reader needs no lock: it reads
``size`` first and only the values below it (appends are atomic under the
GIL, and a chunk, once made, never moves).
"""

from __future__ import annotations

import mmap
import sys
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from ..common.values import TENSOR_BATCH, tensors_to_floats

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


#: Values per storage chunk (512 KiB). Each chunk is its own anonymous memory
#: map: no chunk is ever moved (a growing array is copied on every resize),
#: and a chunk released when the run ends goes straight back to the system
#: (freed heap blocks do not), so a run's memory stays at its data.
CHUNK = 1 << 16


def _map_chunk(populated: bool) -> mmap.mmap:
    """A chunk's memory: private (a forked child never writes into its parent's scores); ``populated``,
    mapped in one step (Linux) rather than faulted in a page at a time as it fills, a third of the cost
    of storing a batch here. Only a series past its first chunk asks for that: it is a long one."""
    if sys.platform == "win32":
        return mmap.mmap(-1, CHUNK * 8)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (getattr(mmap, "MAP_POPULATE", 0) if populated else 0)
    return mmap.mmap(-1, CHUNK * 8, flags=flags)


class Series:
    """One metric's values in yield order: 8 bytes per example while dense.

    Values fill fixed-size chunks; ``freeze`` joins them into one numpy
    array when the run ends, releasing each chunk as it is copied. Example
    indices are stored only once the metric skips an example (a mapping
    without that field), so the common case costs no index array. Tensors
    wait in ``pending`` and are moved to the host in batches: one device
    synchronisation per batch instead of one per example.
    """

    __slots__ = ("batch", "chunks", "frozen", "frozen_indices", "indices", "pending", "pos", "size", "start", "view")

    def __init__(self, start: int) -> None:
        self.start = start
        self.size = 0
        self.chunks: list[mmap.mmap] = []
        self.view: memoryview[float] | None = None  # the last chunk, as doubles
        self.pos = CHUNK  # position in the last chunk; full: the next value opens a chunk
        self.indices: array[int] | None = None
        self.pending: list[tuple[int, Any]] = []
        #: Pending tensors are moved at this many; the live thread lowers it so a slow run's tensors show.
        self.batch = TENSOR_BATCH
        self.frozen: npt.NDArray[np.float64] | None = None
        self.frozen_indices: npt.NDArray[np.int64] | None = None

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
            pos = self._open_chunk()
        self.view[pos] = value  # type: ignore[index]
        self.pos = pos + 1
        self.size += 1

    def _open_chunk(self) -> int:
        """A new chunk for the next values (the last one is full); its first position."""
        chunk = _map_chunk(populated=bool(self.chunks))
        self.chunks.append(chunk)
        self.view = memoryview(chunk).cast("d")
        return 0

    def defer(self, index: int, tensor: Any) -> None:
        self.pending.append((index, tensor))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Move pending tensors to the host, all at once, and append their values."""
        pending, self.pending = self.pending, []
        self.batch = TENSOR_BATCH
        for (index, _), value in zip(pending, tensors_to_floats([t for _, t in pending]), strict=True):
            self.append(index, value)

    def extend(self, indices: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        """Append many values at once (a resumed run's earlier examples)."""
        for index, value in zip(indices.tolist(), values.tolist(), strict=True):
            self.append(index, value)

    def put(self, indices: range | npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        """Append a batch's values (C-contiguous float64) for ascending example ``indices``: copied into
        the chunks a slice at a time, never a Python step per value. ``size`` grows only after each
        slice is in place, so the live thread reads no value before it is written."""
        if self.pending:
            self.flush()
        n = len(values)
        if not n:
            return
        first = int(indices[0])
        consecutive = isinstance(indices, range)
        if self.indices is not None or not consecutive or first != self.start + self.size:
            if self.indices is None:  # the first gap: from now on, indices are kept
                self.indices = array("q", range(self.start, self.start + self.size))
            if isinstance(indices, range):
                self.indices.extend(indices)
            else:
                self.indices.frombytes(indices.astype("<i8", copy=False).tobytes())
        done = 0
        while done < n:
            pos = self.pos
            if pos == CHUNK:
                pos = self._open_chunk()
            take = min(CHUNK - pos, n - done)
            self.view[pos : pos + take] = values[done : done + take]  # type: ignore[index, call-overload]
            self.pos = pos + take
            self.size += take
            done += take

    def before(self, limit: int) -> int:
        """How many of the values appended so far belong to examples before ``limit``."""
        size = self.size  # read first: every value below it is in place
        if self.indices is None:
            return max(0, min(size, limit - self.start))
        return bisect_left(self.indices, limit, 0, size)

    def read(self, lo: int, hi: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Copies of the (example indices, values) at positions ``lo:hi`` (``hi`` at most a ``size`` seen before).

        Safe while another thread appends: values below ``size`` never change
        and chunks never move. Views of the chunks are dropped before returning,
        so the chunks can be released when the run ends.
        """
        import numpy as np

        if self.frozen is not None:
            values = self.frozen[lo:hi].copy()
        else:
            values = np.empty(hi - lo, dtype=np.float64)
            pos = lo
            while pos < hi:
                chunk, offset = divmod(pos, CHUNK)
                count = min(CHUNK - offset, hi - pos)
                values[pos - lo : pos - lo + count] = np.frombuffer(
                    self.chunks[chunk], dtype=np.float64, count=count, offset=offset * 8
                )
                pos += count
        indices = self.indices
        if indices is None:
            return np.arange(self.start + lo, self.start + hi, dtype=np.int64), values
        return np.frombuffer(indices[lo:hi], dtype=np.int64).copy(), values

    def freeze(self, limit: int | None = None, release: bool = True) -> npt.NDArray[np.float64]:
        """The values (of examples before ``limit``) as one array, made once when the run has ended.

        ``release``: the chunks go back to the system as they are copied (the
        evaluation's own thread ends the run: nothing appends any more).
        Without it (another thread ends the run while the evaluation may
        still append: an exit hook, a signal), the values are copied and the
        chunks left as they are.
        """
        if self.frozen is None:
            import numpy as np

            if release and self.pending:
                self.flush()
            size = self.size if limit is None else self.before(limit)
            indices = self.indices
            if indices is not None:
                self.frozen_indices = np.frombuffer(indices[:size], dtype=np.int64).copy()
            if not release:
                self.frozen = self.read(0, size)[1]
                return self.frozen
            if self.view is not None:
                self.view.release()
                self.view = None
            out = np.empty(size, dtype=np.float64)
            chunks, self.chunks = self.chunks, []
            chunks.reverse()
            pos = 0
            while chunks:
                chunk = chunks.pop()
                count = max(0, min(CHUNK, size - pos))
                out[pos : pos + count] = np.frombuffer(chunk, dtype=np.float64, count=count)
                pos += count
                chunk.close()  # back to the system now, so the copy never doubles the memory
            self.frozen, self.pos = out, CHUNK
        return self.frozen

    def frozen_index(self) -> npt.NDArray[np.int64]:
        """The example index of each frozen value."""
        import numpy as np

        values = self.freeze()
        if self.frozen_indices is not None:
            return self.frozen_indices
        return np.arange(self.start, self.start + len(values), dtype=np.int64)

    def value_at(self, index: int) -> float | None:
        """This metric's value for example ``index`` (once the run has ended), or None when it lacks one."""
        values = self.freeze()
        if self.frozen_indices is None:
            pos = index - self.start
        else:
            pos = bisect_left(self.frozen_indices, index)
            if pos >= len(self.frozen_indices) or self.frozen_indices[pos] != index:
                return None
        return float(values[pos]) if 0 <= pos < len(values) else None
