"""The one warning category tracked emits, so users can filter or escalate it."""

from __future__ import annotations

import warnings


class TrackedWarning(UserWarning):
    """Something went wrong around the evaluation; the evaluation itself went on."""


def warn(message: str, stacklevel: int = 3) -> None:
    from .secrets import scrub

    warnings.warn(f"tracked: {scrub(message)}", TrackedWarning, stacklevel=stacklevel)
