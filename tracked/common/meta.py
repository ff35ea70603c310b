"""The package's own metadata: its version is written once, in ``pyproject.toml``."""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    """The installed version of tracked; ``0+unknown`` when run from a source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tracked")
    except PackageNotFoundError:
        return "0+unknown"
