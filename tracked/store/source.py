"""Where a journal's files are read from: the one interface the journal's readers share."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Protocol


class Source(Protocol):
    """Where a journal's files are read from: its folder, or a folder inside a session zip."""

    #: The folder itself (a writer may be alive there); None for a copy (a zip): no writer can be.
    folder: Path | None

    def open(self, name: str) -> contextlib.AbstractContextManager[tuple[io.BufferedIOBase, int]]:
        """The file as a stream and its size; OSError/KeyError if missing, refused (ValueError) if hostile."""
        ...
