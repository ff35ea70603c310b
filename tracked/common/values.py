"""What a yielded item means: metric numbers and example details.

An item is one example. A number is one metric (named by the
``default_metric`` setting); a mapping holds metric name -> number, and its
other fields (prediction, reference, id, ...) are the example's details,
kept as text and never interpreted.
"""

from __future__ import annotations

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
