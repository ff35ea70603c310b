"""Taking a run's examples in: the evaluation's hot path.

A million examples must cost about a second in all, so recording one only
appends floats to compact arrays (``storage``) and, for examples with text
fields, one row of details (``details``); a batch (``tracked.batch``) is
stored a column at a time. Values that cannot be recorded are skipped with
one warning per field, never raised: an hours-long evaluation must not die
at example 900,000 over one value. ``Run`` (``run.py``) adds the call
around it: its sinks, its clock and its end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Mapping
from types import FrameType, TracebackType
from typing import Any

from ..common.names import YIELDED, is_own
from ..common.options import Settings
from ..common.values import (
    TEXT,
    InvalidValue,
    as_detail,
    as_number,
    detail_kind,
    is_number_like,
    is_scalar_tensor,
    merge_kind,
)
from ..common.warn import warn
from . import batch as _batch
from .batch import batch
from .details import Block, Details
from .fields import is_metric
from .storage import Series

#: Characters of a detail kept in memory; a longer one goes to the journal at once (memory stays bounded).
LONG_DETAIL = 4096
#: Integers a float holds (as_number's range): a larger one is skipped, never made a detail by the fast path.
_FLOAT_INT = 1 << 1000
#: The detail holding, per example, the metrics named past ``max_metrics`` (``name=value; ...``).
MORE_METRICS = "(more metrics)"


class Recorder:
    """The examples of one call, as they are yielded: per-metric series, details, skipped values."""

    def __init__(self, settings: Settings, name: str, spill: Callable[[int, str, str], bool] | None = None) -> None:
        self.settings = settings
        self.name = name
        self.count = 0
        self.series: dict[str, Series] = {}
        #: field -> its series, for the fields yielded as metrics: the series' own name, or (a field named like
        #: tracked's own values) the name it was given instead (``renamed``). What the hot path looks up.
        self._fields: dict[str, Series] = {}
        #: The default metric's series (a float yielded alone), once there is one.
        self._default: Series | None = None
        #: field -> the name its values are recorded under, for the fields that have one of tracked's names.
        self.renamed: dict[str, str] = {}
        #: The fields of the example (or batch) being recorded: a name given to a field must be none of them.
        self._current: Collection[Any] = ()
        #: (example index, field -> text) for examples that have details.
        self.details = Details()
        #: field (None: the whole item) -> (number of values skipped, first message).
        self.skipped: dict[str | None, tuple[int, str]] = {}
        #: Writes a long detail to disk at once (the journal's); False when it could not.
        self.spill = spill
        #: Fields found to be details (labels, ids, or not among ``metrics``), however numeric.
        self._details_only: set[str] = set()
        #: Metrics a batch has filled (their integers were looked at once).
        self._batched: set[str] = set()
        self._warned_label = False
        self._warned_names = False
        #: Fields named like tracked's own values, warned about (they are recorded as ``<name> (yielded)``).
        self._warned_own: set[str] = set()
        #: Set once the run ends: examples yielded after that are not taken.
        self._sealed = False
        self.halted = False  # ended by the exit hook or a signal: the process is going

    def add(self, item: Any) -> None:
        """Record one yielded example (index = number of examples before it)."""
        if self._sealed:  # the run was ended (an exit hook, a signal) while the evaluation went on
            if self.halted:  # the process is ending: a thread spinning here must not starve the end's writing
                time.sleep(0.05)
            return
        index = self.count
        if type(item) is float:
            self.count = index + 1
            series = self._default
            if series is not None:  # the common case, inlined
                series.append(index, item)
            else:
                self._add_value(index, None, self.settings.default_metric, item)
                self._default = self._fields.get(self.settings.default_metric)
        elif type(item) is batch:  # counts its own examples, once they are all in place
            self._add_batch(index, item)
        elif type(item) is dict or isinstance(item, Mapping):  # (a dict: no ABC check, 0.3 µs an example)
            self.count = index + 1
            self._add_mapping(index, item)
        else:
            self.count = index + 1
            self._add_value(index, None, self.settings.default_metric, item)

    def _series(self, name: str, index: int) -> Series | None:
        """The metric's series; None for a field that is a detail (a label, an id; see ``is_metric``)
        and once ``max_metrics`` names are taken (the value is then a detail)."""
        series = self._fields.get(name)
        if series is None:
            if name in self._details_only:
                return None
            if name != self.settings.default_metric and not is_metric(name, self.settings):
                self._details_only.add(name)
                return None
            # One of tracked's own names, or one tracked gave another field: recorded under a name of its own.
            target = self._free(name) if is_own(name) or name in self.renamed.values() else name
            series = self.series.get(target)  # a resumed run's, or a metric's (the default one)
            if series is None:
                if len(self.series) >= self.settings.max_metrics:
                    self._too_many(index, name)
                    return None
                series = self.series[target] = Series(index)
            if target != name:
                self._renamed(index, name, target)
            self._fields[name] = series
        return series

    def _free(self, name: str) -> str:
        """``<name> (yielded)``, or ``<name> (yielded 2)`` ... : a name no field of the run has."""
        taken = {*self._fields, *self._details_only, *self.renamed.values(), *map(str, self._current)}
        new, number = YIELDED.format(name=name), 1
        while new in taken or is_own(new):
            number += 1
            new = f"{name} (yielded {number})"
        return new

    def _renamed(self, index: int, name: str, new: str) -> None:
        whose = "tracked gives its own values" if is_own(name) else f"tracked gave the field {self._given(name)!r}"
        self.renamed[name] = new
        if name not in self._warned_own:
            self._warned_own.add(name)
            warn(
                f"{self.name}: example {index} has a metric {name!r}, a name {whose}; it is recorded as {new!r}",
                stacklevel=5,
            )

    def _given(self, target: str) -> str:
        return next((field for field, given in self.renamed.items() if given == target), target)

    def _too_many(self, index: int, name: str) -> None:
        # ``{example_id: score}`` makes a metric per example: N x N memory. Past the limit, names are details.
        if not self._warned_names:
            self._warned_names = True
            warn(
                f"{self.name}: example {index} has a metric {name!r} beyond the first {self.settings.max_metrics} "
                "metric names; further new names are kept as details, not metrics (option max_metrics)",
                stacklevel=5,
            )

    def _metric(self, name: str, index: int, value: float) -> bool:
        series = self._series(name, index)
        if series is None:
            return False
        series.append(index, value)
        return True

    def _add_mapping(self, index: int, item: Mapping[Any, Any]) -> None:
        more = ""  # metric names past max_metrics: one detail for all of them, not one per name
        known = self._fields
        sparse = self.details.sparse
        quick = None if sparse is None else sparse.quick
        for key, value in item.items():
            kind = type(value)
            if type(key) is str:  # the common cases, inlined: no call but the appends
                if kind is float:
                    series = known.get(key)
                    if series is not None:
                        series.append(index, value)
                        continue
                elif quick is not None:  # a detail field seen before with values of this type
                    fast = quick.get(key)
                    if fast is not None and fast[0] is kind:
                        if kind is str:
                            if len(value) <= LONG_DETAIL:
                                fast[1].append(index)
                                fast[2].append(value)
                                continue
                        elif -_FLOAT_INT < value < _FLOAT_INT:  # (a larger int is skipped, as as_number says)
                            fast[1].append(index)
                            fast[2].append(repr(value))
                            continue
            if value is None:  # this example has no such metric
                continue
            name = key if type(key) is str else str(key)
            if quick is not None and type(key) is not str:  # 1 beside "1": both go through ``Details.put``
                quick.pop(name, None)
            self._current = item  # a name tracked gives this field must be none of the example's
            added = self._add_value(index, name, name, value)
            self._current = ()
            if added is not False:
                continue
            if name in self.series or name in self._details_only or not self._warned_names or not is_number_like(value):
                text = as_detail(value)  # text, a label, an id
                merge_kind(self.details.kinds, name, detail_kind(value))
                if len(text) > LONG_DETAIL:
                    self.details.put(index, name, self._long(index, name, text))
                    continue
                column = self.details.put(index, name, text)
                if type(key) is str and (kind is str or (kind in (int, bool) and name in self._details_only)):
                    # From now on this field's values of this type are appended directly (see above).
                    self.details.sparse.quick.setdefault(name, (kind, *column))  # type: ignore[union-attr]
            else:  # a metric name past max_metrics
                more = f"{more}; {name}={value}" if more else f"{name}={value}"
        if more:
            merge_kind(self.details.kinds, MORE_METRICS, TEXT)
            self.details.put(index, MORE_METRICS, more)

    def _add_batch(self, first: int, item: batch) -> None:
        """Many examples at once: each column is stored in one step; the count grows last, so the live
        thread never takes part of a batch."""
        try:
            columns = _batch.columns_of(item)
        except _batch.BadBatch as exc:
            count, message = self.skipped.get("(batch)", (0, ""))
            if not count:
                message = f"{self.name}: the batch yielded at example {first} is skipped: {exc}"
                warn(f"{message} (further bad batches are counted, not repeated)", stacklevel=5)
            self.skipped["(batch)"] = (count + 1, message)
            return
        n = columns.n
        if not n:  # an empty batch (a mask that kept nothing): no examples, and no metric named by it
            return
        texts: dict[str, list[str | None]] = {}
        kinds: dict[str, str] = {}  # the type of each detail column, as single yields note it
        more: list[str] = []  # metric names past max_metrics: one column for all of them, as single yields
        for name, values in columns.numbers.items():
            present = columns.present.get(name)
            self._current = (*columns.numbers, *columns.texts)
            series = self._series(name, first)
            self._current = ()
            if series is None and name not in self._details_only:
                more.append(name)
                continue
            if series is None:  # a label, an id: details, written as single yields write them
                original = columns.originals.get(name, values)
                texts[name] = _batch.as_texts(original, n, present)
                kinds[name] = _batch.column_kind(original)
                columns.texts.pop(name, None)  # a list's text values: in that column already
                continue
            if name in columns.first_ints and name not in self._batched:
                self._label_averaged(first, name, columns.first_ints[name])
            self._batched.add(name)
            if present is None:
                series.put(range(first, first + n), values)
            else:
                series.put(present.nonzero()[0] + first, values[present])
        if more:
            texts[MORE_METRICS] = self._more_metrics(more, columns, n)
        for name, column in columns.texts.items():  # long ones are dealt with off the hot path: see ``settle``
            texts[name if name not in texts else f"{name} (detail)"] = column
        for name, position, why in columns.skipped:
            if name not in texts or name in self.series:
                self._skip(first + position, name, why)
        if texts:
            if len(texts) > 1:  # in the batch's field order, as the examples' fields are
                order = {name: k for k, name in enumerate(map(str, item.fields))}
                texts = dict(
                    sorted(texts.items(), key=lambda kv: order.get(kv[0].removesuffix(" (detail)"), len(order)))
                )
            for name in texts:
                merge_kind(self.details.kinds, name, kinds.get(name, TEXT))
            self.details.add_block(Block(first, n, texts))
        self.count = first + n

    @staticmethod
    def _more_metrics(names: list[str], columns: _batch.Columns, n: int) -> list[str | None]:
        """``name=value; ...`` per example for metric names past ``max_metrics`` (rare: a run naming a
        metric per example); the values as single yields write them."""
        parts = [
            _batch.as_texts(columns.originals.get(k, columns.numbers[k]), n, columns.present.get(k)) for k in names
        ]
        rows = [
            "; ".join(f"{k}={t}" for k, t in zip(names, texts, strict=True) if t is not None)
            for texts in zip(*parts, strict=True)
        ]
        return [row or None for row in rows]

    def settle(self, block: Block) -> Block:
        """A batch's texts as single yields would have left them: values that are not text as text, and
        texts past ``LONG_DETAIL`` written whole to the journal with a marked preview kept. Done by the
        live thread as it takes the block (or at the end), never in the evaluation's hot path."""
        columns = dict(block.columns)
        for name, texts in block.columns.items():
            if not set(map(type, texts)) <= {str, type(None)}:
                texts = columns[name] = [t if t is None or type(t) is str else _shown(t) for t in texts]
            if max(map(len, filter(None, texts)), default=0) > LONG_DETAIL:
                columns[name] = [
                    t if t is None or len(t) <= LONG_DETAIL else self._long(block.start + j, name, t)
                    for j, t in enumerate(texts)
                ]
        return Block(block.start, block.n, columns, settled=True)

    def _long(self, index: int, name: str, text: str) -> str:
        """A detail too long to keep in memory: written to the journal now, a marked preview kept."""
        from ..store.journal import LONG_DETAILS  # numpy: not at import tracked

        if self.spill is None or not self.spill(index, name, text):
            return text  # nowhere to put it: kept whole rather than lost
        return f"{text[:LONG_DETAIL]}… [{len(text):,} characters in all; the full text is in {LONG_DETAILS}]"

    def _add_value(self, index: int, field: str | None, name: str, value: Any) -> bool:
        """Record a value that is not a plain float; False when it is a field's detail (not numeric, or no room)."""
        if is_scalar_tensor(value):
            series = self._series(name, index)
            if series is None:
                return field is None
            series.defer(index, value)
            return True
        try:
            number = as_number(value)
        except InvalidValue as exc:
            self._skip(index, field, str(exc))
            return True
        if number is not None:
            if type(value) is int and not 0 <= value <= 1 and name not in self._fields:
                self._label_averaged(index, name, value)
            return self._metric(name, index, number) or field is None
        if field is not None:
            return False
        self._skip(index, None, f"{type(value).__name__} is neither a number nor a mapping of metric -> number")
        return True

    def _label_averaged(self, index: int, name: str, value: int) -> None:
        """An integer such as 7 in a field not named as a metric may be a class label: say so, once."""
        if self._warned_label or self.settings.metrics or not is_metric(name, self.settings):
            return
        self._warned_label = True
        warn(
            f"{self.name}: example {index}, field {name!r} holds an integer ({value}) and is averaged as a metric; "
            f"if it is a label, a class or an id, name it in details=[{name!r}] (or list the metrics: metrics=[...])",
            stacklevel=6,
        )

    def _skip(self, index: int, field: str | None, message: str) -> None:
        # Invalid values are skipped with a warning rather than raised: an
        # hours-long evaluation must not die at example 900,000 over one value.
        count, first = self.skipped.get(field, (0, ""))
        if count == 0:
            where = f"example {index}" if field is None else f"example {index}, field {field!r}"
            first = f"{self.name}: {where}: {message}; value skipped"
            warn(f"{first} (further problems with this field are counted, not repeated)", stacklevel=5)
        self.skipped[field] = (count + 1, first)

    def adding(self, unwound: BaseException | None = None) -> bool:
        """Whether a thread is now halfway through one of this run's examples: in ``add``, counted, not whole
        (one not counted yet leaves the last whole). Every thread is looked at (a lazy generator may be driven
        from another); ``unwound``: whether that exception, raised in ``add``, left its example halfway."""
        chains = [_frames(None, unwound.__traceback__)] if unwound else map(_frames, sys._current_frames().values())
        for chain in chains:
            batching = False
            for frame in chain:  # from the innermost call outwards
                code = frame.f_code
                if code is _BATCHING:  # a batch is not counted until it is whole: the count is exact
                    batching = True
                elif code is _ADD and frame.f_locals.get("self") is self:
                    index = frame.f_locals.get("index")
                    if not batching and isinstance(index, int) and self.count > index:
                        return True
                    break
        return False


def _frames(frame: FrameType | None, tb: TracebackType | None = None) -> list[FrameType]:
    """A thread's frames from ``frame`` outwards; or an exception's, from where it was raised outwards."""
    out = []
    while tb is not None:
        out.append(tb.tb_frame)
        tb = tb.tb_next
    out.reverse()
    while frame is not None:
        out.append(frame)
        frame = frame.f_back
    return out


def _shown(value: Any) -> str:
    """A value in a batch's text column, as text (by the live thread): one whose ``repr`` fails is named,
    never the reason the journal stops."""
    try:
        return as_detail(value)
    except Exception as exc:  # noqa: BLE001 - the user's object; a single yield of it raises at the yield
        return f"<{type(value).__name__} that cannot be shown: {type(exc).__name__}: {exc}>"


#: The code of recording an example (every example comes in here): a thread inside it is halfway through one.
_ADD = Recorder.add.__code__
#: The code of recording a batch: the count is exact meanwhile (it grows once the batch is whole).
_BATCHING = Recorder._add_batch.__code__
