"""What a yielded item means: metric numbers and example details.

An item is one example. A number is one metric (named by the
``default_metric`` setting); a mapping holds metric name -> number, and its
other fields (prediction, reference, id, ...) are the example's details,
kept as text and never interpreted.
"""

from __future__ import annotations

import math
import sys
from typing import Any


class InvalidValue(ValueError):
    """A yielded value tracked cannot turn into a number; the message names where."""


def as_number(value: Any) -> float | None:
    """The float of a numeric scalar, or None when ``value`` is not numeric.

    Numeric means: int, float, bool (0/1), and anything with ``__float__``
    that is a scalar: numpy scalars and 0-d arrays, torch scalar tensors,
    Decimal, Fraction. A multi-element array or an int beyond float range
    raises InvalidValue: it looks like a number but has no single value.
    """
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is bool:
        try:
            return float(value)
        except OverflowError:
            raise InvalidValue(f"integer {_short(value)} is beyond float range") from None
    if isinstance(value, (str, bytes, bytearray)) or not hasattr(value, "__float__"):
        return None
    size = getattr(value, "size", None)
    if getattr(value, "ndim", 0) != 0 or (isinstance(size, int) and size != 1):
        shape = getattr(value, "shape", "?")
        raise InvalidValue(f"{type(value).__name__} of shape {tuple(shape) if shape != '?' else shape} is not a scalar")
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError) as exc:
        raise InvalidValue(f"{type(value).__name__} {_short(value)} has no float value ({exc})") from None


def finite_number(value: Any) -> float | None:
    """The float of a numeric scalar when it is finite; None for NaN, ±inf, text and anything else: what a
    single value in ClearML can hold."""
    try:
        number = as_number(value)
    except InvalidValue:
        return None
    return number if number is not None and math.isfinite(number) else None


def is_number_like(value: Any) -> bool:
    """A value ``as_number`` would take (a metric, had there been room for its name)."""
    return not isinstance(value, (str, bytes, bytearray)) and hasattr(value, "__float__")


def as_detail(value: Any) -> str:
    """An example detail as text: details are only ever written, never evaluated. A numpy scalar, 0-d
    array or tensor reads as its value (``3``, ``True``), not as ``np.int64(3)`` or ``tensor(3)``."""
    if isinstance(value, str):
        return value
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        try:
            value = value.item()
        except Exception:  # noqa: BLE001 - no value to read: its repr, as any other object's
            return repr(value)
        if isinstance(value, str):
            return value
    return repr(value)


#: Tensors moved to the host per batch (one device synchronisation each).
TENSOR_BATCH = 4096


def is_scalar_tensor(value: Any) -> bool:
    """A torch tensor of one element with no dimensions (CPU or any device); torch is never imported."""
    return type(value).__module__ == "torch" and getattr(value, "ndim", None) == 0


def tensors_to_floats(tensors: list[Any]) -> list[float]:
    """Floats of scalar tensors: stacked and copied to the host once, not once per example."""
    torch = sys.modules.get("torch")
    if torch is not None and len(tensors) > 1:
        try:
            with torch.no_grad():  # stacking must not grow an autograd graph
                try:
                    return list(torch.stack(tensors).to("cpu", torch.float64).tolist())
                except RuntimeError:  # tensors on several devices: one transfer per device
                    by_device: dict[Any, list[int]] = {}
                    for position, tensor in enumerate(tensors):
                        by_device.setdefault(tensor.device, []).append(position)
                    out = [0.0] * len(tensors)
                    for positions in by_device.values():
                        stacked = torch.stack([tensors[p] for p in positions]).to("cpu", torch.float64)
                        for p, value in zip(positions, stacked.tolist(), strict=True):
                            out[p] = value
                    return out
        except Exception:  # noqa: BLE001 - odd dtypes (complex, mixed): fall back to one by one
            pass
    return [float(t) for t in tensors]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encodable(text: str) -> str:
    """``text`` as UTF-8 can hold it: a lone surrogate (bytes decoded with ``surrogateescape``, a broken
    tokenizer) is written as its escape, ``\\udc80``, where it would make writing the whole run fail."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


#: A detail column's type, so it comes back as it was yielded when all its values share one; else text.
TEXT = "text"
_KINDS: dict[type, str] = {int: "int", float: "float", bool: "bool", str: TEXT}
_DTYPE_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float"}


def detail_kind(value: Any) -> str:
    """int, float, bool (numpy and torch scalars by their dtype), or text for anything else."""
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    dtype = getattr(value, "dtype", None)
    if dtype is None or getattr(value, "shape", None) != ():
        return TEXT
    return dtype_kind(dtype)


def dtype_kind(dtype: Any) -> str:
    """The detail kind of a numpy or torch dtype."""
    code = getattr(dtype, "kind", None)
    if isinstance(code, str):
        return _DTYPE_KINDS.get(code, TEXT)
    text = str(dtype)  # torch: torch.int64, torch.bool, torch.float32, torch.bfloat16
    if text == "torch.bool":
        return "bool"
    if "float" in text or "half" in text or "double" in text:
        return "float"
    return "int" if "int" in text or "long" in text or "short" in text else TEXT


def merge_kind(kinds: dict[str, str], name: str, kind: str) -> None:
    """Note one more value of ``name``: a column whose values differ in type is text."""
    known = kinds.get(name)
    if known != kind:
        kinds[name] = kind if known is None else TEXT


def typed_column(texts: Any, kind: str | None) -> Any:
    """A detail column's texts (None: absent) as the type its values were yielded with: int64 (``Int64``
    with absent values), float64, bool (``boolean``); the texts themselves when they do not all read back."""
    if kind not in _DTYPE_KINDS.values():
        return texts
    parsed = _parsed(texts, kind)
    if parsed is not None:
        return parsed
    import numpy as np
    import pandas as pd

    values = [v if isinstance(v, str) else None for v in (texts.tolist() if hasattr(texts, "tolist") else texts)]
    missing = any(v is None for v in values)
    try:
        if kind == "float":
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        if kind == "int":
            ints = [None if v is None else int(v) for v in values]
            return pd.array(ints, dtype="Int64") if missing else np.array(ints, dtype=np.int64)
        if any(v not in (None, "True", "False") for v in values):
            return texts
        flags = [None if v is None else v == "True" for v in values]
        return pd.array(flags, dtype="boolean") if missing else np.array(flags, dtype=bool)
    except (ValueError, OverflowError, TypeError):  # an edited journal, an int past int64: kept as text
        return texts


def _parsed(texts: Any, kind: str | None) -> Any:
    """An int or float detail column parsed by pyarrow, in C (ten million labels: 0.2 s, where a Python
    step per value took 5 s); None where pyarrow is missing or refuses a value (not text, or text it does
    not parse as ``repr`` writes numbers): ``typed_column`` then reads it a value at a time."""
    if kind not in ("int", "float"):
        return None
    try:
        import pyarrow as pa
    except ImportError:
        return None
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    try:
        strings = pa.array(texts, type=pa.string(), from_pandas=True)
        # What pyarrow reads and Python does not (an edited journal): 0x10 as 16, nan(1) as NaN. Left to it.
        if any(pc.any(pc.match_substring(strings, odd)).as_py() for odd in ("xX" if kind == "int" else "(")):
            return None
        array = strings.cast(pa.int64() if kind == "int" else pa.float64())
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if kind == "float":
        return array.to_numpy(zero_copy_only=False)  # absent: NaN
    values = np.asarray(array.fill_null(0))
    if not array.null_count:
        return values
    return pd.arrays.IntegerArray(values, np.asarray(array.is_null()))
