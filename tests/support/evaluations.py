"""Decorated evaluations that test modules share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tracked import tracked_eval


@tracked_eval(verbose=False)
def yields(items: list[Any]) -> Iterator[Any]:
    yield from items
