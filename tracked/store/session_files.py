"""A session's files as they are read: from its folder or its zip, line by line, within bounds.

ClearML's event files are capped per file (``TRACKED_MAX_READ_MB``) and
per line, and a zip member that would expand absurdly (a zip bomb) is
refused: sessions are files anyone can edit, and reading one must never
take the machine down. The journal's own files are not capped: they are
read straight into arrays or streamed (``store/journal_details.py``), so a
healthy run of any size is read.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from ..common.errors import SessionError

SESSION_FILES = ("task.json", "metrics.jsonl", "log.jsonl")
#: Reading is capped per file (``TRACKED_MAX_READ_MB``) and per line; a zip member expanding more is refused.
DEFAULT_READ_MB = 256.0
MAX_LINE_BYTES = 16 * 2**20
MAX_ZIP_RATIO = 200
#: Deflate's own limit (about 1,032 to 1): a journal's member may expand so far (a metric that is 1.0 on
#: every example, a label repeated), as it is read into arrays or streamed; a size declared past it is a lie.
MAX_DEFLATE_RATIO = 1100


def read_limit() -> int:
    """Bytes read at most from one session file (``TRACKED_MAX_READ_MB``, default 256 MB)."""
    raw = os.environ.get("TRACKED_MAX_READ_MB", "")
    try:
        megabytes = float(raw) if raw.strip() else DEFAULT_READ_MB
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        from ..common.warn import warn

        warn(f"TRACKED_MAX_READ_MB={raw!r}: expected a positive number of megabytes; using {DEFAULT_READ_MB:g}")
        megabytes = DEFAULT_READ_MB
    return int(max(megabytes, 1.0) * 2**20)


def _batches(stream: IO[bytes], filename: str, problems: list[str]) -> Iterator[dict[str, Any]]:
    """The events of a jsonl file, read line by line: memory follows the events kept, not the file's size."""
    limit, read, number = read_limit(), 0, 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        read += len(line)
        if len(line) > MAX_LINE_BYTES:  # skip the rest of the line without holding it
            while line and not line.endswith(b"\n") and read <= limit:
                line = stream.readline(MAX_LINE_BYTES)
                read += len(line)
            problems.append(f"{filename} line {number}: longer than {MAX_LINE_BYTES // 2**20} MB, skipped")
            continue
        if read > limit:
            problems.append(f"{filename}: only its first {limit // 2**20} MB read (TRACKED_MAX_READ_MB raises it)")
            return
        if not line.strip():
            continue
        try:
            batch = json.loads(line)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested past Python's limit
            problems.append(f"{filename} line {number}: not JSON ({type(exc).__name__})")
            continue
        for event in batch if isinstance(batch, list) else [batch]:
            if isinstance(event, dict):
                yield event


class ZipSource:
    """A journal inside a session zip (a copy: no writer can be alive there). The zip is opened again for
    each file read, so its details can be read after the session was (``tracked show``, ``--paired``)."""

    folder: Path | None = None

    def __init__(self, path: Path, prefix: str) -> None:
        self._path, self._prefix = path, prefix

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[tuple[io.BufferedIOBase, int]]:
        with zipfile.ZipFile(self._path) as archive:
            info = archive.getinfo(self._prefix + name)
            refuse_absurd(info, ratio=MAX_DEFLATE_RATIO)
            with archive.open(info) as stream:
                yield cast(io.BufferedIOBase, stream), info.file_size  # a ZipExtFile, which is one


def refuse_absurd(info: zipfile.ZipInfo, path: Path | None = None, ratio: float = MAX_ZIP_RATIO) -> None:
    """A zip member that would expand absurdly (a zip bomb) is refused: zipfile never yields more than
    the declared size, so the declared sizes are what to check."""
    limit, ratio = ratio, info.file_size / max(info.compress_size, 1)
    if info.file_size > 2**20 and ratio > limit:
        raise SessionError(
            f"{path or 'zip'}: refused, {info.filename} would expand {ratio:,.0f} times "
            f"(to {info.file_size / 2**20:,.0f} MB); not a session tracked or ClearML wrote"
        )


def _opener(file: Path) -> Callable[[], IO[bytes]]:
    def open_regular() -> IO[bytes]:
        # A regular file of the session's own: a link is not followed, a FIFO never waited on (OSError).
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{file.name}: not a regular file")
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    return open_regular


@contextlib.contextmanager
def open_files(path: Path) -> Iterator[dict[str, Callable[[], IO[bytes]]]]:
    """Openers for the session's files, in its folder or its zip; a zip that would expand absurdly is refused."""
    if path.is_dir():
        yield {name: _opener(path / name) for name in SESSION_FILES if os.path.lexists(path / name)}
        return
    if not path.is_file():
        raise SessionError(f"{path}: no such file or folder")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SessionError(f"{path}: not a readable session zip ({exc})") from None
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if base in SESSION_FILES and base not in members:
                members[base] = info
        for info in members.values():
            refuse_absurd(info, path)
        yield {base: functools.partial(archive.open, info) for base, info in members.items()}


def events(files: dict[str, Callable[[], IO[bytes]]], name: str, problems: list[str]) -> Iterator[dict[str, Any]]:
    if name in files:
        with files[name]() as stream:
            yield from _batches(stream, name, problems)
