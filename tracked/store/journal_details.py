"""A journal's details (``details.jsonl``), read when a command asks for them, as far as it needs.

The details are most of a run's journal (a 60-character text per example is
640 MB at ten million examples), and most commands need few of them or none:
``tracked show`` prints three examples, ``tracked compare`` none, ``--paired``
the ids. So the reader only keeps where they are; each read streams the file
line by line (never more than a line in memory besides what it keeps) and
stops as soon as it has what was asked for. A batch line (``{"start", "n",
"columns"}``, as the writer writes up to 1,024 examples) goes straight into
the columns asked for, with no mapping built per example.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .source import Source

DETAILS = "details.jsonl"
#: A details line longer than this is no line the writer wrote (its lines hold 1,024 examples): skipped.
MAX_LINE_BYTES = 16 * 2**20

#: (first example, examples, field -> its texts, None where an example has none).
Block = tuple[int, int, dict[str, list[Any]]]


@dataclass
class DetailsFile:
    """Where a journal's details are (``size`` committed bytes of ``details.jsonl`` in ``source``); each
    read appends what it finds wrong to ``problems`` (each line's problem once, however often it is read)."""

    source: Source | None
    size: int
    problems: list[str]
    _said: set[str] = field(default_factory=set)

    def _problem(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.problems.append(text)

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of the committed part, one at a time; a line past the cap is skipped."""
        if self.source is None or not self.size:
            return
        try:
            with self.source.open(DETAILS) as (stream, _):
                left, number = self.size, 0
                while left > 0:
                    line = stream.readline(min(MAX_LINE_BYTES + 1, left))
                    if not line:
                        return
                    left -= len(line)
                    number += 1
                    if len(line) > MAX_LINE_BYTES:  # skip the rest of it without holding it
                        while left > 0 and line and not line.endswith(b"\n"):
                            line = stream.readline(min(MAX_LINE_BYTES, left))
                            left -= len(line)
                        self._problem(f"{DETAILS} line {number}: longer than {MAX_LINE_BYTES // 2**20} MB, skipped")
                        continue
                    yield number, line
        except (OSError, KeyError, ValueError) as exc:  # ValueError: refused (a zip member expanding absurdly)
            self._problem(f"{DETAILS}: unreadable ({exc})")

    def blocks(self) -> Iterator[Block]:
        """Each line as a block of examples; a line that is no block (an edit, a cut write) is a problem."""
        for number, line in self.lines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if isinstance(entry, dict):  # a batch: {"start", "n", "columns": {field: [text or null]}}
                    start, n, columns = int(entry["start"]), int(entry["n"]), dict(entry["columns"])
                    if start < 0 or n < 0 or any(not isinstance(v, list) or len(v) < n for v in columns.values()):
                        raise ValueError("a batch line whose start, size or columns do not agree")
                    yield start, n, {str(k): v[:n] if len(v) > n else v for k, v in columns.items()}
                    continue
                index, fields = entry
                columns = {str(k): [v] for k, v in dict(fields).items()}
                if int(index) >= 0:  # at no example of the run's (moved by an edit): left out, as past the count
                    yield int(index), 1, columns
            except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
                self._problem(f"{DETAILS}: an unreadable line (line {number})")

    def end(self) -> int:
        """One past the last example that has details (how many examples the details alone account for)."""
        return max((start + n for start, n, columns in self.blocks() if n and columns), default=0)

    def first(self, shown: int, count: int) -> dict[int, dict[str, str]]:
        """The details of examples ``0 .. shown - 1``; stops at the first line past them (the writer writes
        examples in order), so ``tracked show`` reads a few lines of any journal."""
        out: dict[int, dict[str, str]] = {}
        for start, n, columns in self.blocks():
            if start >= min(shown, count):
                break
            for j in range(min(n, shown - start, count - start)):
                fields = {name: str(texts[j]) for name, texts in columns.items() if texts[j] is not None}
                if fields:
                    out.setdefault(start + j, fields)
        return out

    def rows(self, count: int) -> list[tuple[int, dict[str, str]]]:
        """Every example's details as (index, field -> text), in file order (``resume``, which needs all)."""
        out: list[tuple[int, dict[str, str]]] = []
        for start, n, columns in self.blocks():
            for j in range(n):
                if 0 <= start + j < count:
                    fields = {name: str(texts[j]) for name, texts in columns.items() if texts[j] is not None}
                    if fields:
                        out.append((start + j, fields))
        return out

    def columns(
        self, count: int, fields: Collection[str] | None = None, kinds: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """field -> one value per example, for the ``fields`` asked (every field when None), in the order the
        fields first appear: an object array of texts (NaN where an example has none), or, for a field
        ``kinds`` says was yielded as int or float, its numbers, parsed a line at a time (an id column of ten
        million examples is 80 MB of int64, not ten million strings)."""
        out: dict[str, Any] = {}
        numbers = {name: _Numbers(count, kind) for name, kind in (kinds or {}).items() if kind in _PARSE}
        failed: list[str] = []
        high = 0
        for start, n, columns in self.blocks():
            stop = min(start + n, count)
            if stop <= start:
                continue
            if start < high:  # out of order or written twice: only an edited journal; read it example by example
                return self._columns_exact(count, fields)
            high = stop
            for name, texts in columns.items():
                if fields is not None and name not in fields:
                    continue
                part = texts[: stop - start]
                number = numbers.get(name)
                if number is not None:
                    out.setdefault(name, number)
                    try:
                        number.put(start, part)
                        continue
                    except (ValueError, TypeError, OverflowError):  # not all numbers: the field stays text
                        del numbers[name]
                        failed.append(name)
                        out[name] = None
                if name in failed:
                    continue
                column = out.get(name)
                if column is None:
                    column = out[name] = np.full(count, np.nan, dtype=object)
                column[start:stop] = [_text(t) for t in part]
        if failed:  # read again as text (a rare, edited journal)
            out.update(self.columns(count, failed))
        return {
            name: column.array() if isinstance(column, _Numbers) else column
            for name, column in out.items()
            if column is not None
        }

    def _columns_exact(self, count: int, fields: Collection[str] | None) -> dict[str, npt.NDArray[Any]]:
        """``columns`` for lines in any order: an example written twice keeps its first details, as a whole."""
        out: dict[str, npt.NDArray[Any]] = {}
        seen = np.zeros(count, dtype=bool)  # examples whose details were read: a later line cannot change them
        for start, n, columns in self.blocks():
            stop = min(start + n, count)
            if stop <= start:
                continue
            width = stop - start
            taken = np.zeros(width, dtype=bool)
            fresh = ~seen[start:stop]
            for name, texts in columns.items():
                have = np.fromiter((t is not None for t in texts[:width]), dtype=bool, count=width)
                taken |= have
                if fields is not None and name not in fields:
                    continue
                column = out.get(name)
                if column is None:
                    column = out[name] = np.full(count, np.nan, dtype=object)
                chunk = np.empty(width, dtype=object)
                chunk[:] = [_text(t) for t in texts[:width]]
                keep = have & fresh
                column[start:stop][keep] = chunk[keep]
            seen[start:stop] |= taken
        return out


#: The detail types parsed as numbers while reading (as ``common.values.typed_column`` would parse them).
_PARSE = {"int": (int, np.int64), "float": (float, np.float64)}


class _Numbers:
    """A numeric detail column being read: its values, and which examples have one."""

    def __init__(self, count: int, kind: str) -> None:
        self.parse, dtype = _PARSE[kind]
        self.values = np.full(count, np.nan) if kind == "float" else np.zeros(count, dtype=dtype)
        self.present = np.zeros(count, dtype=bool)

    def put(self, start: int, texts: list[Any]) -> None:
        stop = start + len(texts)
        if None in texts:
            have = np.fromiter((t is not None for t in texts), dtype=bool, count=len(texts))
            parsed = np.fromiter(map(self.parse, (t for t in texts if t is not None)), dtype=self.values.dtype)
            self.values[start:stop][have] = parsed
            self.present[start:stop] = have
        else:
            self.values[start:stop] = np.fromiter(map(self.parse, texts), dtype=self.values.dtype, count=len(texts))
            self.present[start:stop] = True

    def array(self) -> Any:
        """float64 (NaN where none), int64, or pandas' Int64 where some examples have none."""
        if self.values.dtype.kind == "f" or self.present.all():
            return self.values
        import pandas as pd

        return pd.arrays.IntegerArray(self.values, ~self.present)


def _text(value: Any) -> Any:
    """A detail as text; NaN where the example has none (as a table's missing cell)."""
    return np.nan if value is None else value if type(value) is str else str(value)
