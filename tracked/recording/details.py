"""Where a run keeps its examples' details (text fields), in example order.

A single yielded example adds one ``(index, {field: text})`` row; a batch
(``tracked.batch``) adds one block of columns, so a thousand examples cost
one step here, not a thousand dicts. Blocks stay blocks on their way to the
journal; they are expanded into rows only where rows are needed (the
console's first examples), outside the evaluation's hot path. Entries are
never changed once added: the live thread reads them without a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..common.values import encodable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Row = tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Block:
    """The details of a batch: ``n`` examples from ``start``, one list of texts (None: absent) per field."""

    start: int
    n: int
    columns: Mapping[str, Sequence[str | None]]
    #: Its texts are all text and none too long (``Run.settle``), checked off the hot path.
    settled: bool = False

    def rows(self, limit: int) -> Iterator[Row]:
        for j in range(min(self.n, limit - self.start)):
            fields = {name: text for name, column in self.columns.items() if (text := column[j]) is not None}
            if fields:
                yield self.start + j, fields


class Details:
    """Per-example details: rows for single examples, blocks for batches, in example order."""

    __slots__ = ("_entries", "kinds")

    def __init__(self) -> None:
        self._entries: list[Row | Block] = []
        #: field -> the type its values were yielded with (``common.values.detail_kind``), for typed columns.
        self.kinds: dict[str, str] = {}

    def append(self, index: int, fields: dict[str, str]) -> None:
        self._entries.append((index, fields))

    def add_block(self, block: Block) -> None:
        self._entries.append(block)

    def extend(self, rows: Sequence[Row]) -> None:
        self._entries.extend(rows)

    def entries_from(
        self, position: int, limit: int, settle: Callable[[Block], Block] | None = None
    ) -> tuple[list[Row | Block], int]:
        """The entries from ``position`` with examples before ``limit``, and the next position. Blocks stay
        blocks: whoever writes them writes a batch at a time. A batch's examples become whole together
        (``Run.count`` grows by the batch at once), so a block reaching past ``limit`` waits, whole.

        ``settle`` (the live thread's) replaces each block taken, for good: a batch's texts are checked
        there, not in the evaluation's hot path.
        """
        entries, out = self._entries, list[Row | Block]()
        while position < len(entries):
            entry = entries[position]
            if isinstance(entry, Block):
                if entry.start + entry.n > limit:
                    break
                if settle is not None and not entry.settled:
                    entries[position] = entry = settle(entry)  # one reference store: atomic for readers
                out.append(entry)
            elif entry[0] >= limit:
                break
            else:
                out.append(entry)
            position += 1
        return out, position

    def first(self, n: int) -> dict[int, dict[str, str]]:
        """The details of examples ``0 .. n-1`` that have some."""
        rows: dict[int, dict[str, str]] = {}
        for entry in self._entries:  # in example order
            if isinstance(entry, Block):
                if entry.start >= n:
                    break
                rows.update(entry.rows(n))
            elif entry[0] >= n:
                break
            else:
                rows[entry[0]] = entry[1]
        return {index: {k: encodable(v) for k, v in fields.items()} for index, fields in rows.items()}

    def columns(self, count: int) -> dict[str, npt.NDArray[Any]]:
        """field -> its texts per example (an object array of ``count``, None where absent), for DataFrames.

        Blocks are copied column by column; only single examples' rows are visited one by one.
        """
        import numpy as np

        out: dict[str, npt.NDArray[Any]] = {}

        def column(name: str) -> np.ndarray[Any, Any]:
            if name not in out:
                out[name] = np.full(count, None, dtype=object)
            return out[name]

        for entry in self._entries:
            if isinstance(entry, Block):
                n = max(0, min(entry.n, count - entry.start))
                for name, texts in entry.columns.items():
                    column(name)[entry.start : entry.start + n] = texts[:n]
                continue
            index, fields = entry
            if index < count:
                for name, text in fields.items():
                    column(name)[index] = text
        return out
