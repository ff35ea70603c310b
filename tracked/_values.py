"""What a yielded item means: metric numbers and example details.

An item is one example. A number is one metric (named by the
``default_metric`` setting); a mapping holds metric name -> number, and its
other fields (prediction, reference, id, ...) are the example's details,
kept as text and never interpreted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def as_detail(value: Any) -> str:
    """An example detail as text: details are only ever written, never evaluated."""
    return value if isinstance(value, str) else repr(value)


def is_finite(value: float) -> bool:
    return math.isfinite(value)


def split_mapping(item: Mapping[Any, Any]) -> tuple[dict[str, float], dict[str, str], list[tuple[str, str]]]:
    """(metrics, details, [(field, problem)]) of one mapping item."""
    metrics: dict[str, float] = {}
    details: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key, value in item.items():
        name = key if isinstance(key, str) else str(key)
        if value is None:
            continue  # a metric this example does not have
        try:
            number = as_number(value)
        except InvalidValue as exc:
            problems.append((name, str(exc)))
            continue
        if number is None:
            details[name] = as_detail(value)
        else:
            metrics[name] = number
    return metrics, details, problems


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
