"""What keeps one session's upload bounded and alone: a deadline, and a lock on the session.

The deadline: ClearML's import retries a request the server does not answer
for hours (each waits up to 300 s for its answer), so a server that stops
answering ``events.add_batch`` or the files upload would keep ``tracked
upload`` running for ever. The import of one session therefore runs in a
daemon thread and is given up past ``deadline_s``: ``DEADLINE_MULTIPLE``
(12) times ``SERVER_TIMEOUT_S`` (5 s), that is 60 s, plus one
``SERVER_TIMEOUT_S`` per MiB of the session (its zip, or its folder's
files), for a large artifact on a slow link. Every call tracked makes
itself (``server.Server``) waits at most ``SERVER_TIMEOUT_S``.

The lock: an ``flock`` on a hidden file beside where the session's zip is
(``.<session>.zip.tracked-upload.lock``; inside the folder when that place
cannot be written). A second ``tracked upload`` of a session being uploaded
does not wait: it says so in one line (exit code 2), so one session gives
one task.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..store.runs import SERVER_TIMEOUT_S
from .record import UPLOAD_RECORD, record_paths
from .server import UploadError

if TYPE_CHECKING:
    from ..store.session import Session

#: One session's upload is given up after this many times ``SERVER_TIMEOUT_S`` (plus one per MiB of it).
DEADLINE_MULTIPLE = 12
LOCK_SUFFIX = ".lock"


def deadline_s(session: Session) -> float:
    """How long the upload of ``session`` may take: ``(DEADLINE_MULTIPLE + its MiB) * SERVER_TIMEOUT_S``."""
    return (DEADLINE_MULTIPLE + math.ceil(_size(session.path) / 2**20)) * SERVER_TIMEOUT_S


def _size(path: Path) -> int:
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    except OSError:
        return 0


def within(seconds: float, work: Callable[[], None], name: str) -> bool:
    """Run ``work`` in a daemon thread; whether it ended within ``seconds`` (if not, it is left running:
    nothing in Python can stop a thread, and a daemon one does not keep the process alive)."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


@contextlib.contextmanager
def session_lock(session: Session) -> Iterator[None]:
    """Hold the session's upload lock; UploadError at once when another process holds it.

    A folder and its zip are one run: both name the same lock. Where no lock file can be made (a
    read-only share, where no upload record can be written either), the upload goes unlocked.
    """
    import fcntl

    beside_zip = record_paths(session.path)[1]
    places = [beside_zip.with_name(beside_zip.name.removesuffix(".json") + LOCK_SUFFIX)]
    folder = session.path if session.path.is_dir() else None
    if folder is not None:
        places.append(folder / (UPLOAD_RECORD.removesuffix(".json") + LOCK_SUFFIX))
    fd = -1
    for place in places:
        try:
            fd = os.open(place, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            break
        except OSError:
            continue
    if fd < 0:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadError(
                "being uploaded by another process (`tracked upload` of this session is still running); "
                "nothing was uploaded"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would let a third process lock another)
