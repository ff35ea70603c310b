"""A run's per-example details (text fields, labels, ids), kept until the run ends.

Single examples' details go into columns (``Sparse``): per field, the
indices of the examples that have it (8 bytes each) and their texts. No
object is made per example, so a million labels cost two appends each and
give Python's cyclic garbage collector nothing to walk (a dict and a tuple
per example did: it walked them at every collection, and they took ~300
bytes an example). A batch (``tracked.batch``) adds one block of columns.
Sinks are handed blocks (and rows, where an interval's details are rare),
made by the live thread off the evaluation's hot path. Entries are only
ever appended to, and a block is never changed once added: the live thread
reads them without a lock.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..common.values import encodable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Row = tuple[int, dict[str, str]]
#: A field's column in a ``Sparse``: the indices of the examples that have it, and their texts.
Column = tuple["array[int]", list[str]]


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


class Sparse:
    """The details of single examples from ``start`` on (until a batch comes): a column per field.

    The evaluation's thread appends an example's index, then its text, so a
    reader that takes a column's length from its texts reads whole entries.
    ``quick`` maps a field to the one type of value (str, int, bool) the
    recorder has seen it take as a detail: the hot path appends those directly.
    """

    __slots__ = ("fields", "quick", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.fields: dict[str, Column] = {}
        self.quick: dict[str, tuple[type, array[int], list[str]]] = {}

    def column(self, name: str) -> Column:
        column = self.fields.get(name)
        if column is None:
            column = self.fields[name] = (array("q"), [])
        return column

    def slice(self, lo: int, hi: int) -> list[tuple[str, array[int], list[str]]]:
        """Per field, the (indices, texts) of its examples in ``lo .. hi-1`` (copies)."""
        out = []
        for name, (indices, texts) in list(self.fields.items()):
            size = len(texts)  # first: every index below it is in place
            a, b = bisect_left(indices, lo, 0, size), bisect_left(indices, hi, 0, size)
            if b > a:
                out.append((name, indices[a:b], texts[a:b]))
        return out


class Details:
    """Per-example details: columns for single examples, blocks for batches, in example order."""

    __slots__ = ("_entries", "kinds", "sparse")

    def __init__(self) -> None:
        self._entries: list[Sparse | Block] = []
        #: The columns single examples' details go to now (None until one has details, and after a batch).
        self.sparse: Sparse | None = None
        #: field -> the type its values were yielded with (``common.values.detail_kind``), for typed columns.
        self.kinds: dict[str, str] = {}

    def put(self, index: int, name: str, text: str) -> Column:
        """Record one example's detail (examples in order; an example's fields together); its column."""
        sparse = self.sparse
        if sparse is None:
            sparse = self.sparse = Sparse(index)
            self._entries.append(sparse)
        indices, texts = column = sparse.column(name)
        if indices and indices[-1] == index:  # a key given twice (1 and "1"): the later one, as in a dict
            texts[-1] = text
            return column
        indices.append(index)
        texts.append(text)
        return column

    def append(self, index: int, fields: Mapping[str, str]) -> None:
        for name, text in fields.items():
            self.put(index, name, text)

    def add_block(self, block: Block) -> None:
        self.sparse = None  # single examples after the batch start columns of their own
        self._entries.append(block)

    def extend(self, rows: Sequence[Row]) -> None:
        """Rows of earlier examples (a resumed run's), in example order whatever order they come in: a
        column's indices must ascend. An example given twice keeps its first fields, whole, as the journal's
        reader does (``read_session``)."""
        first: dict[int, Mapping[str, str]] = {}
        for index, fields in rows:
            first.setdefault(index, fields)
        for index in sorted(first):
            self.append(index, first[index])

    def settle(self, limit: int, settle: Callable[[Block], Block]) -> None:
        """Settle the blocks of examples before ``limit`` (what the live thread does as it takes them),
        for a run that had none."""
        entries = self._entries
        for position, entry in enumerate(entries):
            if isinstance(entry, Block) and not entry.settled and entry.start + entry.n <= limit:
                entries[position] = settle(entry)

    def entries_from(
        self, cursor: Cursor, limit: int, settle: Callable[[Block], Block] | None = None
    ) -> list[Row | Block]:
        """The details of examples from ``cursor`` on and before ``limit``; the cursor moves past them.
        A batch's examples become whole together (``Run.count`` grows by the batch at once), so a block
        reaching past ``limit`` waits, whole. Single examples' columns are handed over as blocks (as rows
        where few examples have details).

        ``settle`` (the live thread's) replaces each block taken, for good: a batch's texts are checked
        there, not in the evaluation's hot path.
        """
        entries, out = self._entries, list[Row | Block]()
        while cursor.position < len(entries):
            entry = entries[cursor.position]
            if isinstance(entry, Block):
                if entry.start + entry.n > limit:
                    break
                if settle is not None and not entry.settled:
                    entries[cursor.position] = entry = settle(entry)  # one reference store: atomic for readers
                out.append(entry)
                cursor.position += 1
                cursor.index = entry.start + entry.n
                continue
            following = entries[cursor.position + 1] if cursor.position + 1 < len(entries) else None
            hi = limit if following is None else min(limit, following.start)
            if hi > cursor.index:
                out.extend(_handed(entry.slice(cursor.index, hi)))
                cursor.index = hi
            if following is None or hi < following.start:
                break
            cursor.position += 1
        return out

    def first(self, n: int) -> dict[int, dict[str, str]]:
        """The details of examples ``0 .. n-1`` that have some."""
        rows: dict[int, dict[str, str]] = {}
        for entry in self._entries:  # in example order
            if isinstance(entry, Block):
                if entry.start >= n:
                    break
                rows.update(entry.rows(n))
                continue
            if entry.start >= n:
                break
            for name, indices, texts in entry.slice(entry.start, n):
                for index, text in zip(indices, texts, strict=True):
                    rows.setdefault(index, {})[name] = text
        return {index: {k: encodable(v) for k, v in rows[index].items()} for index in sorted(rows)}

    def columns(self, count: int) -> dict[str, npt.NDArray[Any]]:
        """field -> its texts per example (an object array of ``count``, None where absent), for DataFrames.

        Both blocks and columns are copied a column at a time, never an example at a time.
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
            for name, (indices, texts) in list(entry.fields.items()):
                size = bisect_left(indices, count, 0, len(texts))
                values = np.empty(size, dtype=object)
                values[:] = texts[:size]
                column(name)[np.frombuffer(indices, dtype=np.int64, count=size)] = values
        return out


class Cursor:
    """Where a reader of ``Details`` stands: the entry, and the first example it has not taken."""

    __slots__ = ("index", "position")

    def __init__(self) -> None:
        self.position = 0
        self.index = 0


def _handed(fields: list[tuple[str, array[int], list[str]]]) -> list[Row | Block]:
    """Single examples' details of ``lo .. hi-1`` as sinks take them: one block from the first example with
    details to the last (None where a field is absent), or rows where under an eighth of the block's cells
    would hold a text (the block would be mostly None: details on few examples, or a field per example,
    ``{f"output_{id}": ...}``, whose block grows as examples x fields and whose journal lines would pass
    the reader's cap)."""
    if not fields:
        return []
    first = min(indices[0] for _, indices, _ in fields)
    n = max(indices[-1] for _, indices, _ in fields) - first + 1
    cells = sum(len(indices) for _, indices, _ in fields)
    if 8 * cells >= n * len(fields):
        columns: dict[str, Sequence[str | None]] = {}
        for name, indices, texts in fields:
            if len(indices) == n:
                columns[name] = texts
                continue
            column: list[str | None] = [None] * n
            for index, text in zip(indices, texts, strict=True):
                column[index - first] = text
            columns[name] = column
        return [Block(first, n, columns, settled=True)]
    rows: dict[int, dict[str, str]] = {}
    for name, indices, texts in fields:
        for index, text in zip(indices, texts, strict=True):
            rows.setdefault(index, {})[name] = text
    return [*sorted(rows.items())]
