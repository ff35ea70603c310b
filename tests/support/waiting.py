"""Waiting on other processes in tests: poll with a deadline, never a timed assertion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

TIMEOUT = 60


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
