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
import io
import json
import math
import os
import re
import stat
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .checksums import CRC_BLOCK, damaged_blocks, disagreement
from .journal_details import DETAILS as DETAILS
from .journal_details import DetailsFile
from .source import Source as Source

FORMAT = 1
FOLDER = "tracked"
STATE = "run.json"
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


@dataclass
class FolderSource:
    folder: Path | None

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[tuple[io.BufferedIOBase, int]]:
        assert self.folder is not None
        with open_regular(self.folder / name) as stream:
            yield stream, os.fstat(stream.fileno()).st_size


def read(source: Source, name: str, limit: int = -1) -> bytes:
    """At most ``limit`` bytes of one of the journal's files."""
    with source.open(name) as (stream, _):
        return stream.read(limit)


def open_regular(path: Path) -> io.BufferedIOBase:
    """A regular file opened for reading; a symlink, FIFO, device or folder in its place is refused
    (OSError), never followed or waited on: a session is a folder anyone can edit or send."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name}: not a regular file")
        stream: io.BufferedIOBase = os.fdopen(fd, "rb")
        return stream
    except BaseException:
        os.close(fd)
        raise


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
    problems: list[str] = field(default_factory=list)
    #: Where the details are: read when asked, as far as asked (``first``, ``columns``, ``rows``).
    detail_file: DetailsFile | None = None
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

    @property
    def details(self) -> list[tuple[int, dict[str, str]]]:
        """Every example's details, (index, field -> text) in file order: read whole, each time (``resume``)."""
        return [] if self.detail_file is None else self.detail_file.rows(self.count)

    def first_details(self, shown: int) -> dict[int, dict[str, str]]:
        """The details of the first ``shown`` examples, reading no further than they are."""
        return {} if self.detail_file is None else self.detail_file.first(shown, self.count)

    def detail_columns(
        self, fields: Collection[str] | None = None, kinds: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """field -> one value per example, streamed from the file (``DetailsFile.columns``)."""
        return {} if self.detail_file is None else self.detail_file.columns(self.count, fields, kinds)

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

    Read straight into the array, as far as the file goes (a ``size`` that run.json claims past its file
    allocates nothing for it): memory is what the run holds, once.
    ``crcs``: {"crc": [CRC-32 per block], "items": how many items they were computed over}, or None."""
    width = np.dtype(dtype).itemsize
    if not size:
        return np.empty(0, dtype=dtype[1:]), np.ones(0, dtype=bool)
    try:
        with source.open(name) as (stream, on_disk):
            out = np.empty(min(size, on_disk // width), dtype=dtype[1:])
            view, got = out.data.cast("B"), 0
            while got < len(view):
                read = stream.readinto(view[got:])
                if not read:
                    break
                got += read
    except (OSError, KeyError, ValueError, MemoryError) as exc:  # MemoryError: a size no machine holds (an edit)
        problems.append(f"{name}: unreadable ({type(exc).__name__}: {exc})")
        return np.empty(0, dtype=dtype[1:]), np.ones(0, dtype=bool)
    have = got // width
    out = out[:have]
    if have < size:
        problems.append(f"{name}: {have} of {size} values on disk")
    sound = np.ones(have, dtype=bool)
    record = crcs if isinstance(crcs, dict) else {}
    for block in damaged_blocks(view[: have * width], record.get("crc"), size, record.get("items")):
        first = block * CRC_BLOCK
        last = min(first + CRC_BLOCK, size)
        sound[first:last] = False
        problems.append(f"{name}: damaged (checksum) at items {first:,}-{last - 1:,}; those values are left out")
    if np.dtype(dtype) != out.dtype:  # a big-endian machine: the journal's files are little-endian
        out = out.view(np.dtype(dtype)).astype(dtype[1:])
    return out, sound


def read_journal(where: Path | Source, with_data: bool = True) -> Journal:
    """The journal in a folder (or other source); raises OSError / KeyError / ValueError when there is none.

    Its metrics are read whole (as far as their files go: a healthy run of any size is read); its details
    only when asked, as far as asked (``Journal.first_details``, ``detail_columns``)."""
    source = FolderSource(where) if isinstance(where, Path) else where
    state = json.loads(read(source, STATE, MAX_STATE_BYTES).decode("utf-8"))
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
    dense = _Dense()
    for name, entry in series.items():
        try:
            _read_series(source, journal, str(name), entry, dense)
        except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as exc:  # an edited run.json
            journal.problems.append(
                f"{STATE}: metric {str(name)[:80]!r} is not readable ({type(exc).__name__}); left out"
            )
    details = state.get("details", {})
    committed = details.get("bytes", 0) if isinstance(details, dict) else None
    if type(committed) is not int or committed < 0:  # an edited run.json: no size to trust
        journal.problems.append(f"{STATE}: the details' size is not a count; none is read")
        committed = 0
    if committed:
        try:  # opened now (a FIFO, a link, a zip bomb in its place is said at once), read when asked
            with source.open(DETAILS):
                pass
            journal.detail_file = DetailsFile(source, committed, journal.problems)
        except (OSError, KeyError, ValueError) as exc:  # ValueError: refused (a zip member expanding absurdly)
            journal.problems.append(f"{DETAILS}: unreadable ({exc})")
    _count_on_disk(journal)
    return journal


class _Dense:
    """One read-only ``arange`` shared by every metric scored at each example, in every journal this process
    reads (their indices are views of it): two runs of ten million examples hold 80 MB of indices, not
    80 MB per metric and run."""

    _base = np.arange(0, dtype=np.int64)

    def indices(self, start: int, n: int) -> npt.NDArray[np.int64]:
        if start + n > len(_Dense._base):
            _Dense._base = np.arange(start + n, dtype=np.int64)
            _Dense._base.flags.writeable = False
        return _Dense._base[start : start + n]


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
    held = max(ends, default=0)
    data_elsewhere = bool(state.get("data"))  # a completed run whose examples went to the server
    if not (0 <= claimed <= held or data_elsewhere) and journal.detail_file is not None:
        held = max(held, journal.detail_file.end())  # the details may hold examples no metric scored
    count = claimed if claimed >= 0 and (claimed <= held or data_elsewhere) else held
    if count != claimed:
        journal.recounted = f"{STATE} says {state.get('count')!r} examples, its files hold {held:,}: counted {held:,}"
    state["count"] = count
    for name, (indices, values) in journal.series.items():
        keep = (indices >= 0) & (indices < count)
        if not keep.all():  # never written so (a run records whole examples): moved by an edit
            journal.problems.append(f"{name}: {int((~keep).sum()):,} values at no example of the run's; left out")
            journal.series[name] = (indices[keep], values[keep])


def _read_series(source: Source, journal: Journal, name: str, entry: Any, dense_indices: _Dense) -> None:
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
    values, sound = _read_array(source, f"{entry['file']}.values", "<f8", size, journal.problems, crcs.get("values"))
    if dense is not None:
        indices = dense_indices.indices(dense, len(values)) if dense >= 0 else np.arange(dense, dense + len(values))
        sound_index = np.ones(len(indices), dtype=bool)
    else:
        indices, sound_index = _read_array(
            source, f"{entry['file']}.index", "<i8", size, journal.problems, crcs.get("index")
        )
    n = min(len(values), len(indices))
    keep = sound[:n] & sound_index[:n]
    journal.series[name] = (indices[:n], values[:n]) if keep.all() else (indices[:n][keep], values[:n][keep])


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
