"""A run's durable record on disk: what survives ``kill -9``.

Written while the run goes (every ``flush_interval``), read back by
``tracked show`` / ``read_session`` (a run that died), and by ``resume``.
One folder, ``tracked/`` inside the offline session (or
``$CLEARML_CACHE_DIR/tracked-runs/<task id>/`` with a server):

- ``run.json``: who the run is and how far it got: name, key, status,
  examples, duration, each metric's file and committed size. Replaced
  atomically (temporary file, then rename) after the data files are
  written, so it never points past data that is on disk.
- ``m<k>.values`` (float64) and, once a metric skips an example,
  ``m<k>.index`` (int64): one metric's values and their example indices,
  appended. Bytes past the committed size (a write cut by a kill) are
  ignored and overwritten by the next writer.
- ``details.jsonl``: ``[index, {field: text}]`` per example with details.
- ``lock``: held (``flock``) by the writing process for as long as the run
  is open. A run whose status is still ``running`` but whose lock is free
  was interrupted: its process died without ending it.

Plain binary and JSON only: nothing here is ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .checksums import CRC_BLOCK, damaged_blocks, disagreement

FORMAT = 1
FOLDER = "tracked"
STATE = "run.json"
DETAILS = "details.jsonl"
#: Details longer than ``_run.LONG_DETAIL``, whole, one ``[index, field, text]`` per line, written as they come.
LONG_DETAILS = "long-details.jsonl"
MAX_STATE_BYTES = 16 * 2**20
LOCK = "lock"
#: Claimed (flock) by a process resuming this run, so a second one cannot.
RESUME_LOCK = "resume.lock"
RUNNING, INTERRUPTED = "running", "interrupted"


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Replace run.json atomically: a reader sees the old state or the new one, never half."""
    tmp = folder / f".{STATE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, ensure_ascii=True, allow_nan=False), encoding="ascii")
    os.replace(tmp, folder / STATE)


def write_at(path: Path, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` and cut the file there: a write a kill left half done is overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, offset)
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(fd)


#: Lock fds this process holds; a forked child closes its copies, so the parent's death still frees them.
_held: set[int] = set()


def _after_fork_in_child() -> None:
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def try_lock(path: Path, exclusive: bool = True) -> int | None:
    """An fd holding ``flock`` on ``path``, or None when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:  # no flock on this file system: nobody can be told apart; take it as free
        pass
    _held.add(fd)
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        _held.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


def writer_alive(folder: Path) -> bool:
    """Whether a process still holds the run open (its lock is taken)."""
    lock = folder / LOCK
    if not lock.is_file():
        return False
    try:
        fd = try_lock(lock, exclusive=False)
    except OSError:  # read-only copy: no writer can be there
        return False
    release(fd)
    return fd is None


class Source(Protocol):
    """Where a journal's files are read from: its folder, or a folder inside a session zip."""

    #: The folder itself (a writer may be alive there); None for a copy (a zip): no writer can be.
    folder: Path | None

    def read(self, name: str, limit: int = -1) -> bytes: ...  # at most limit bytes; OSError/KeyError if missing


@dataclass
class FolderSource:
    folder: Path | None

    def read(self, name: str, limit: int = -1) -> bytes:
        assert self.folder is not None
        return read_regular(self.folder / name, limit)


def read_regular(path: Path, limit: int = -1) -> bytes:
    """At most ``limit`` bytes of a regular file; a symlink, FIFO, device or folder in its place is refused
    (OSError), never followed or waited on: a session is a folder anyone can edit or send."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read(limit)
    finally:
        os.close(fd)


#: The names the journal's writer gives a metric's files (``m0``, ``m1`` ...); any other is refused.
_SERIES_FILE = re.compile(r"m[0-9]{1,9}")


@dataclass
class Journal:
    """A run's durable record, as read back."""

    where: str
    state: dict[str, Any]
    live: bool = False
    #: metric -> (example indices, values), committed part only.
    series: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = field(default_factory=dict)
    #: (example index, field -> text), in example order.
    details: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Set when run.json claimed a count its files do not hold (the examples on disk are counted instead).
    recounted: str | None = None

    @property
    def count(self) -> int:
        return int(self.state.get("count", 0))

    @property
    def status(self) -> str:
        """completed, failed, stopped, running (its process is alive) or interrupted (its process died)."""
        status = str(self.state.get("status", RUNNING))
        if status == RUNNING and not self.live:
            return INTERRUPTED
        return status

    def means(self) -> dict[str, float]:
        """Each metric's mean over the finite values of the examples recorded (NaN when it has none)."""
        out: dict[str, float] = {}
        for name, (indices, values) in self.series.items():
            values = values[indices < self.count]
            finite = values[np.isfinite(values)]
            out[name] = float(finite.mean()) if finite.size else math.nan
        return out


def _read_array(
    source: Source, name: str, dtype: str, size: int, problems: list[str], crcs: object = None
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """The file's first ``size`` items, and which of them are sound (False in a block whose CRC is wrong).

    ``crcs``: {"crc": [CRC-32 per block], "items": how many items they were computed over}, or None."""
    if not size:
        return np.empty(0, dtype=dtype), np.ones(0, dtype=bool)
    try:
        data = source.read(name, size * np.dtype(dtype).itemsize)
    except (OSError, KeyError, ValueError) as exc:
        problems.append(f"{name}: unreadable ({exc})")
        return np.empty(0, dtype=dtype), np.ones(0, dtype=bool)
    width = np.dtype(dtype).itemsize
    have = min(size, len(data) // width)
    if have < size:
        problems.append(f"{name}: {have} of {size} values on disk")
    sound = np.ones(have, dtype=bool)
    record = crcs if isinstance(crcs, dict) else {}
    for block in damaged_blocks(data, record.get("crc"), size, record.get("items")):
        first = block * CRC_BLOCK
        last = min(first + CRC_BLOCK, size)
        sound[first:last] = False
        problems.append(f"{name}: damaged (checksum) at items {first:,}-{last - 1:,}; those values are left out")
    return np.frombuffer(data, dtype=dtype, count=have).astype(dtype[1:], copy=True), sound


def read_journal(where: Path | Source, with_data: bool = True, limit: int | None = None) -> Journal:
    """The journal in a folder (or other source); raises OSError / KeyError / ValueError when there is none.

    ``limit`` caps the bytes read from any one file (``tracked show`` on a hostile or huge session).
    """
    source = FolderSource(where) if isinstance(where, Path) else where
    state = json.loads(source.read(STATE, MAX_STATE_BYTES).decode("utf-8"))
    if not isinstance(state, dict):
        raise ValueError(f"{STATE}: not a run record")
    folder = source.folder
    live = folder is not None and str(state.get("status")) == RUNNING and writer_alive(folder)
    journal = Journal(where=str(folder) if folder is not None else "", state=state, live=live)
    if not with_data:
        return journal
    series = state.get("series", {})
    if not isinstance(series, dict):
        journal.problems.append(f"{STATE}: its metrics are not a mapping; none is read")
        series = {}
    for name, entry in series.items():
        try:
            _read_series(source, journal, str(name), entry, limit)
        except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as exc:  # an edited run.json
            journal.problems.append(
                f"{STATE}: metric {str(name)[:80]!r} is not readable ({type(exc).__name__}); left out"
            )
    details = state.get("details", {})
    committed = details.get("bytes", 0) if isinstance(details, dict) else None
    if type(committed) is not int or committed < 0:  # an edited run.json: no size to trust
        journal.problems.append(f"{STATE}: the details' size is not a count; none is read")
        committed = 0
    if limit is not None and committed > limit:
        journal.problems.append(f"{DETAILS}: only its first {limit // 2**20} MB read")
        committed = limit
    if committed:
        try:
            text = source.read(DETAILS, committed).decode("utf-8", errors="replace")
        except (OSError, KeyError, ValueError) as exc:  # ValueError: refused (a zip member expanding absurdly)
            journal.problems.append(f"{DETAILS}: unreadable ({exc})")
            text = ""
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                if isinstance(entry, dict):  # a batch: {"start", "n", "columns": {field: [text or null]}}
                    start, n, columns = int(entry["start"]), int(entry["n"]), dict(entry["columns"])
                    if start < 0 or n < 0 or any(not isinstance(v, list) or len(v) < n for v in columns.values()):
                        raise ValueError("a batch line whose start, size or columns do not agree")
                    for j in range(n):
                        fields = {str(k): str(v[j]) for k, v in columns.items() if v[j] is not None}
                        if fields:
                            journal.details.append((start + j, fields))
                    continue
                index, fields = entry
                journal.details.append((int(index), {str(k): str(v) for k, v in fields.items()}))
            except (ValueError, TypeError, AttributeError, KeyError, IndexError):
                journal.problems.append(f"{DETAILS}: an unreadable line")
    _count_on_disk(journal)
    return journal


def _count_on_disk(journal: Journal) -> None:
    """The examples the journal holds: its record's count, unless that is more than its files hold (a
    damaged or edited ``run.json``: resume would skip examples never scored), or not a count at all.
    Values and details at no example's index (negative, or past the count) are left out."""
    state = journal.state
    raw = state.get("count")
    claimed = raw if type(raw) is int else -1  # 2.5, true, "many", null, missing: no count
    try:
        duration = float(state.get("duration", 0.0))
    except (TypeError, ValueError, OverflowError):
        duration = math.nan
    if not (math.isfinite(duration) and duration >= 0):
        journal.problems.append(f"{STATE}: its duration {str(state.get('duration'))[:40]!r} is no time; 0 s shown")
        state["duration"] = 0.0
    ends = [int(indices.max()) + 1 for indices, _ in journal.series.values() if len(indices)]
    ends += [index + 1 for index, _ in journal.details]
    held = max(ends, default=0)
    data_elsewhere = bool(state.get("data"))  # a completed run whose examples went to the server
    count = claimed if claimed >= 0 and (claimed <= held or data_elsewhere) else held
    if count != claimed:
        journal.recounted = f"{STATE} says {state.get('count')!r} examples, its files hold {held:,}: counted {held:,}"
    state["count"] = count
    for name, (indices, values) in journal.series.items():
        keep = (indices >= 0) & (indices < count)
        if not keep.all():  # never written so (a run records whole examples): moved by an edit
            journal.problems.append(f"{name}: {int((~keep).sum()):,} values at no example of the run's; left out")
            journal.series[name] = (indices[keep], values[keep])
    journal.details = [(index, fields) for index, fields in journal.details if 0 <= index < count]


def _read_series(source: Source, journal: Journal, name: str, entry: Any, limit: int | None) -> None:
    """One metric's values and indices, as its ``run.json`` entry describes them (checked: anyone can edit it)."""
    if not _SERIES_FILE.fullmatch(str(entry.get("file"))):  # ``../../x`` or an absolute path: outside the run
        journal.problems.append(
            f"{STATE}: metric {str(name)[:80]!r} names the file {str(entry.get('file'))[:80]!r}; refused"
        )
        return
    size, dense = entry["size"], entry.get("dense_start")
    if type(size) is not int or size < 0 or not (dense is None or type(dense) is int):
        raise ValueError("a size or start that is no count")
    crcs = entry.get("crc") if isinstance(entry.get("crc"), dict) else {}
    edited = disagreement(size, dense, crcs)
    if edited:  # its values would be read as other examples' (resume would continue over them)
        journal.problems.append(f"{STATE}: metric {str(name)[:80]!r}: {edited}; left out")
        return
    if limit is not None and size * 8 > limit:
        journal.problems.append(f"{entry['file']}: only its first {limit // 2**20} MB read")
        size = limit // 8
    values, sound = _read_array(source, f"{entry['file']}.values", "<f8", size, journal.problems, crcs.get("values"))
    if dense is not None:
        indices = np.arange(dense, dense + len(values), dtype=np.int64)
        sound_index = np.ones(len(indices), dtype=bool)
    else:
        indices, sound_index = _read_array(
            source, f"{entry['file']}.index", "<i8", size, journal.problems, crcs.get("index")
        )
    n = min(len(values), len(indices))
    keep = sound[:n] & sound_index[:n]
    journal.series[name] = (indices[:n][keep], values[:n][keep])


def new_state(**identity: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "format": FORMAT,
        **identity,
        "pid": os.getpid(),
        "host": os.uname().nodename if hasattr(os, "uname") else "",
        "started_at": now,
        "heartbeat": now,
        "status": RUNNING,
        "error": None,
        "count": 0,
        "duration": 0.0,
        "series": {},
        "details": {"file": DETAILS, "bytes": 0},
        "skipped": {},
    }
