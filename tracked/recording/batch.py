"""Batched yields: ``yield batch(correct=correct, loss=loss, id=ids)`` is many examples at once.

GPU evaluations compute a batch's scores as one vector; splitting it into
one Python ``yield`` per example costs more than the scoring. A batch is
taken whole: each numeric column is moved to the host once (tensors
without autograd, from any device), copied into the run's storage once, and
no reference to the caller's arrays or tensors is kept.

Counting, indices, charts, final metrics, statistics, the examples table
and the session are exactly those of the same examples yielded one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..common.values import TEXT, InvalidValue, as_detail, as_number, detail_kind, dtype_kind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


class batch:  # lower case: used like a function, ``yield batch(correct=...)``
    """Many examples in one yield: per-example columns (1-D numpy arrays, torch tensors on any device,
    lists, tuples, pandas Series), all of one length, and scalars that apply to every example.

    ``batch(correct=c, loss=l)`` or ``batch({"exact match": em})`` for names that are not identifiers;
    ``batch(df)`` takes a pandas DataFrame's columns. Numeric columns are metrics, others details, by the
    same rules as single yields.
    """

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any] | pd.DataFrame | None = None, /, **columns: Any) -> None:
        if fields is None:
            self.fields: dict[str, Any] = columns
        elif type(fields).__module__.startswith("pandas") and hasattr(fields, "columns"):  # a DataFrame
            # Its columns as Series (no truth value to test, no row-wise mapping to copy).
            frame = cast("pd.DataFrame", fields)
            self.fields = {**{name: frame[name] for name in frame.columns}, **columns}
        else:
            self.fields = {**cast("Mapping[str, Any]", fields), **columns}

    def __repr__(self) -> str:
        return f"batch({', '.join(self.fields)})"


class BadBatch(ValueError):
    """A batch that cannot be taken (mismatched lengths, a 2-D column); the message says which."""


class Columns:
    """A batch, converted: ``n`` examples, float64 metric candidates and text columns (None: absent)."""

    __slots__ = ("first_ints", "n", "numbers", "originals", "present", "skipped", "texts")

    def __init__(self) -> None:
        self.n = 0
        self.numbers: dict[str, npt.NDArray[np.float64]] = {}
        #: A number column's values as given, where its float64 copy would not read as they do (integers,
        #: booleans, a list, a scalar): a column kept as a detail (a label, an id) is written from these.
        #: Held for the step that takes the batch only.
        self.originals: dict[str, Any] = {}
        #: For number columns with absent values (None in a list): which examples have one.
        self.present: dict[str, npt.NDArray[np.bool_]] = {}
        self.texts: dict[str, list[str | None]] = {}
        #: (field, position, why) of values that cannot be numbers: skipped, as single yields skip them.
        self.skipped: list[tuple[str, int, str]] = []
        #: A list column's first integer when it is neither 0 nor 1 (maybe a class label: one warning).
        self.first_ints: dict[str, int] = {}


def columns_of(item: batch) -> Columns:
    """Convert every field once; raises BadBatch for lengths that differ, arrays that are not 1-D, or
    columns that cannot be read (an iterator, a set, a tensor numpy cannot hold)."""
    np = _numpy()
    out = Columns()
    lengths: dict[str, int] = {}
    scalars: dict[str, Any] = {}
    for key, value in item.fields.items():
        name = key if type(key) is str else str(key)
        column = value
        if type(value) is not np.ndarray or value.ndim != 1 or value.dtype.kind not in "biuf":  # not the usual
            column = _column(np, name, value)
            if column is None:
                scalars[name] = value
                continue
        lengths[name] = len(column)
        if isinstance(column, np.ndarray):  # numbers, 1-D
            out.numbers[name] = np.ascontiguousarray(column, dtype=np.float64)
            if column.dtype.kind != "f":
                out.originals[name] = column
        else:
            _list_column(np, out, name, column)
    if not lengths:
        raise BadBatch("it has no per-example column (an array, tensor, list or Series)")
    out.n = n = next(iter(lengths.values()))
    if any(length != n for length in lengths.values()):
        raise BadBatch("its columns differ in length: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
    for name, value in scalars.items():  # a scalar applies to every example
        try:
            number = as_number(value)
        except InvalidValue as exc:  # skipped in every example, as single yields would: the rest is kept
            out.skipped.extend((name, j, str(exc)) for j in range(n))
            continue
        if number is not None:
            out.numbers[name], out.originals[name] = np.full(n, number), value
        elif value is not None:
            out.texts[name] = [as_detail(value)] * n
    return out


@functools.cache
def _numpy() -> Any:
    """numpy, imported at the first batch (not at ``import tracked``) and kept: an ``import`` statement per
    batch goes through any import hook the process has (ClearML's costs about 1.5 µs a statement)."""
    import numpy

    return numpy


def _column(np: Any, name: str, value: Any) -> Sequence[Any] | npt.NDArray[Any] | None:
    """A per-example column: a 1-D numpy array of numbers (bool, int, float), or a sequence sorted out
    value by value; None for a scalar."""
    module = type(value).__module__
    kind = module.split(".", 1)[0]
    if kind == "torch":
        if value.ndim == 0:
            return None
        value = value.detach()
        if value.device.type != "cpu":
            value = value.to("cpu")  # one transfer per column and batch
        if value.dtype.is_complex:
            raise BadBatch(f"field {name!r}: complex values are not metrics")
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16: float32 holds each value exactly
            value = value.float()
        try:
            value = value.numpy()
        except Exception as exc:  # noqa: BLE001 - sparse, meta, nested: no per-example values to read
            raise BadBatch(f"field {name!r}: a {value.layout} {value.dtype} tensor cannot be read ({exc})") from None
    elif kind == "pandas" and hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return None
        if value.ndim != 1:
            raise BadBatch(f"field {name!r} has shape {value.shape}; a batch's columns are 1-D")
        if type(value).__module__.startswith("numpy.ma"):  # masked: a masked value is "no such metric" (None)
            return list(value.tolist())
        if value.dtype.kind in "biuf":
            return cast("npt.NDArray[Any]", value)
        return list(value.tolist())  # text, objects: details (or numbers, sorted out value by value)
    if isinstance(value, (list, tuple)):
        return value
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        return None  # a scalar (a mapping too: one detail for every example, as a single yield shows it)
    if isinstance(value, Sequence) or module == "array":  # range, array.array, deque...: a column
        return list(value)
    raise BadBatch(
        f"field {name!r} is a {type(value).__name__}: a column is a list, tuple, 1-D array, tensor or Series"
    )


def _list_column(np: Any, out: Columns, name: str, values: Sequence[Any]) -> None:
    """A list, value by value as single yields take them: numbers are the metric, None is "no such
    metric", a value that cannot be a number is skipped (counted, one warning), and text (or anything
    else) is the example's detail. A list whose first value is text is taken as a text column whole."""
    if values and type(values[0]) is str:
        # Text: a copy (the caller's list may change; its strings cannot), nothing per value here: even
        # checking that each is text costs 6-30 µs a thousand (more for long texts). Other values mixed
        # in, and texts too long to keep, are dealt with off the hot path by ``Run.settle``.
        out.texts[name] = list(values)
        return
    numbers = np.full(len(values), np.nan)
    present = np.zeros(len(values), dtype=bool)
    texts: list[str | None] = [None] * len(values)
    first_int: int | None = None
    for j, value in enumerate(values):
        if value is None:
            continue
        try:
            number = as_number(value)
        except InvalidValue as exc:
            out.skipped.append((name, j, str(exc)))
            continue
        if number is None:
            texts[j] = as_detail(value)
            continue
        numbers[j], present[j] = number, True
        if first_int is None:
            first_int = value if type(value) is int else 0
    if present.any():
        out.numbers[name], out.originals[name] = numbers, values
        if not present.all():
            out.present[name] = present
        if first_int is not None and not 0 <= first_int <= 1:
            out.first_ints[name] = first_int  # as a single yield of this int would: one warning
    if any(t is not None for t in texts):
        out.texts[name] = texts


def column_kind(original: Any) -> str:
    """The detail kind (``common.values``) of a number column kept as a detail: its dtype's, or its values'."""
    if type(original) is list or type(original) is tuple:
        kinds = {detail_kind(v) for v in original if v is not None}
        return kinds.pop() if len(kinds) == 1 else TEXT
    dtype = getattr(original, "dtype", None)
    if dtype is not None and getattr(original, "ndim", 0) == 1:
        return dtype_kind(dtype)
    return detail_kind(original)


def as_texts(original: Any, n: int, present: npt.NDArray[np.bool_] | None) -> list[str | None]:
    """A number column kept as a detail (a label, an id): each value's text as a single yield writes it,
    from the values as given (exact integers past 2**53, True and False), never from their float64 copy.
    ``original`` is an integer or boolean array, a list (None: absent), a scalar, or a float64 array."""
    if type(original) is list or type(original) is tuple:
        return [None if v is None else as_detail(v) for v in original]
    if hasattr(original, "tolist") and getattr(original, "ndim", 0) == 1:
        values = original.tolist()  # Python ints, bools, floats: exact
        texts: list[str | None] = list(map(repr if original.dtype.kind == "f" else str, values))
    else:
        texts = [as_detail(original)] * n
    if present is not None:
        texts = [t if p else None for t, p in zip(texts, present.tolist(), strict=True)]
    return texts
