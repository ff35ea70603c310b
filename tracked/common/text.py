"""Text as a terminal or a log can show it: control characters escaped, long details clipped,
characters the stream cannot encode escaped, and a reader that went away no error."""

from __future__ import annotations

import contextlib
import re
import sys
from typing import TextIO

_DETAIL_WIDTH = 80


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters shown, not obeyed: an ESC, BEL or CR in a name or a detail must not move the
    cursor, set a window title or write the clipboard of whoever reads the output (``\\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def clip(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= _DETAIL_WIDTH else text[: _DETAIL_WIDTH - 1] + "…"


def say(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` as well as the stream allows: characters it cannot encode (a cp1252
    console, a lone surrogate) are escaped, and a reader that went away (``| head``) is no error."""
    stream = stream or sys.stdout
    write_safely(stream, printable(text) + "\n")
    with contextlib.suppress(OSError, ValueError):
        stream.flush()


def write_safely(stream: TextIO, text: str) -> None:
    """Write what the stream can take: unencodable characters escaped, a closed pipe or stream ignored."""
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
    except (OSError, ValueError):  # nobody is reading
        pass
