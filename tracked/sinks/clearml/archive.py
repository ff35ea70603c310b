"""The offline session's zip, as ClearML writes it when an offline task closes: fast to write.

ClearML deflates every file of the session at zlib's default level when
the task closes (``Task.__shutdown`` in ``clearml/task.py``). Measured at
200,000 examples with a text detail, that was 1.3 s of the run's 1.8 s end,
and it grows with the run: the scores' binary files and the zstd parquet
artifact barely shrink, and JSON lines shrink almost as much at level 1 in
a fraction of the time. While tracked closes its task, ClearML's module
sees a ``ZipFile`` that stores the run's journal (``tracked/``: binary
scores, and the details, which a zip of a big run spent seconds deflating;
the zip is then about the folder's size) and what is compressed already,
and deflates the rest (ClearML's events and console) at level 1. Any zip reader (ClearML's import, ``tracked
upload``, ``zipfile``) reads both kinds of member as before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

from ...store.journal import FOLDER

#: Files stored as they are: binary numbers (the journal's scores), or compressed already.
STORED = frozenset((
    ".values", ".index", ".parquet", ".feather", ".arrow", ".zip", ".gz", ".bz2", ".xz", ".zst", ".npz",
    ".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".mp3",
))  # fmt: skip
#: zlib's level for the rest (JSON lines, text): about 4x as fast as the default, a little larger.
LEVEL = 1


class QuickZip(zipfile.ZipFile):
    """A ``ZipFile`` that picks each member's compression by its name, unless the caller gives one."""

    def write(
        self,
        filename: Any,
        arcname: Any = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        if compress_type is None and self.compression == zipfile.ZIP_DEFLATED:
            name = os.fspath(filename if arcname is None else arcname).replace(os.sep, "/")
            if name.startswith(f"{FOLDER}/") or os.path.splitext(name)[1].lower() in STORED:
                compress_type = zipfile.ZIP_STORED
            elif compresslevel is None:
                compresslevel = LEVEL
        super().write(filename, arcname, compress_type, compresslevel)


_lock = threading.Lock()
_closing = 0  # closes under way in this process (overlapping runs close in their own threads)
_forks = 0  # forks into this process: a close begun before one is not this process's to end


@contextlib.contextmanager
def quick_zip() -> Iterator[None]:
    """While a task closes: ClearML's module writes the session's zip with ``QuickZip``. Left as it is
    where ClearML's module no longer names ``zipfile.ZipFile`` (another ClearML version, or a patch)."""
    global _closing
    module = sys.modules.get("clearml.task")
    with _lock:
        if module is not None and _closing == 0 and getattr(module, "ZipFile", None) is not zipfile.ZipFile:
            module = None
        if module is not None:
            module.ZipFile = QuickZip  # type: ignore[attr-defined]
            _closing += 1
        forks = _forks
    try:
        yield
    finally:
        if module is not None:
            with _lock:
                if forks == _forks:
                    _closing -= 1
                    if _closing == 0:
                        module.ZipFile = zipfile.ZipFile  # type: ignore[attr-defined]


def _after_fork_in_child() -> None:
    """A process forked while another of its threads closed a task: in the child no close is under way
    (the thread is not there to end it, and the lock may be held for good): ClearML's module names
    ``zipfile.ZipFile`` again."""
    global _lock, _closing, _forks
    _lock, _forks = threading.Lock(), _forks + 1
    module = sys.modules.get("clearml.task")
    if _closing and module is not None and getattr(module, "ZipFile", None) is QuickZip:
        module.ZipFile = zipfile.ZipFile  # type: ignore[attr-defined]
    _closing = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
