"""The journal sink: every ``flush_interval``, the examples so far are made durable on disk.

What it writes is described in ``tracked/store/journal.py``. A process that
dies without cleaning up (``kill -9``, the OOM killer, a segfault) loses at
most the examples of the last interval; ``tracked show`` then reports the
run as ``interrupted`` and ``resume=True`` continues it. A disk that fails
(full, read-only) is one warning; the evaluation goes on, and every later
flush tries again from where the journal stands.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..common.paths import tracked_root
from ..common.secrets import scrub, scrubber, unchanged
from ..common.warn import warn
from ..recording.details import Block, Row
from ..recording.sink import Where
from ..store import journal
from ..store.checksums import extend_crcs

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..common.result import EvalResult
    from ..recording.sink import RunView, Update


class JournalSink:
    """Keeps the run's journal: its identity at the start, its examples at every flush, its end."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.state: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self._details_backlog: list[Row | Block] = []  # handed over, not yet on disk
        self._warned = False
        #: A resumed run points the resume index at itself only once its journal holds the earlier examples.
        self._must_cover = 0
        self._pointed = False
        self._long: BinaryIO | None = None
        self._scrub: Callable[[str], str] = scrub

    def start(self, run: RunView, where: Where) -> Where | None:
        from ..store.resume import key_of

        try:
            self.folder = self._make_folder(run, where)
            self._lock_fd = journal.try_lock(self.folder / journal.LOCK)
            earlier = run.earlier
            self.state = journal.new_state(
                name=run.name,
                project=run.settings.project,
                key=key_of(run.settings, run.name, run.call),
                params=run.call.params,
                task_id=where.task_id,
                session=None if where.session_dir is None else str(where.session_dir),
                expected=run.expected,
                resumed_from=None if earlier is None else str(earlier.folder),
                **_shard_state(run),
            )
            self._must_cover = 0 if earlier is None else earlier.count
            journal.write_state(self.folder, self.state)
            self._long = (self.folder / journal.LONG_DETAILS).open("ab")
            if earlier is not None:  # the earlier examples' previews point here: their full texts come too
                self._carry_long_details(earlier.folder, earlier.count)
            self._scrub = scrubber()
            self._point(run)
        except Exception as exc:  # noqa: BLE001 - a journal that cannot start must not stop the evaluation
            self.folder = None
            self._warn(run, exc, starting=True)
            return None
        return Where(journal_dir=self.folder)

    def joined(self, run: RunView, where: Where) -> Where | None:
        """ClearML's task is there now (made while the run went): the journal moves into its offline session,
        where it travels with the session and its zip, and records the task. On another file system than the
        session (a ClearML cache configured elsewhere), it stays where it is."""
        folder = self.folder
        if folder is None or (where.task_id is None and where.session_dir is None):
            return None
        state = self.state
        state["task_id"] = where.task_id or state.get("task_id")
        target = folder
        if where.session_dir is not None and where.session_dir not in folder.parents:
            with contextlib.suppress(OSError):
                made = self._make_folder(run, Where(session_dir=where.session_dir))
                try:
                    os.replace(folder, made)  # onto the empty folder just made: one atomic step
                    target = made
                    state["session"] = str(where.session_dir)
                except OSError:
                    made.rmdir()
        self.folder = target  # the task and the session are written with the next flush's state
        if self._pointed and target != folder:  # ``resume`` must find it where it is now
            self._pointed = False
            self._point(run)
        return Where(journal_dir=target)

    def _make_folder(self, run: RunView, where: Where) -> Path:
        if where.journal_dir is not None:  # one a run being opened had begun (``Opening.instead``): this run's
            where.journal_dir.mkdir(parents=True, exist_ok=True)
            return where.journal_dir
        if where.session_dir is not None:  # inside the offline session: it travels with the session and its zip
            root = where.session_dir / journal.FOLDER
            root.mkdir(parents=True, exist_ok=True)
            number = 0
            while True:  # overlapping runs in one session: one journal each, the first run's is 0
                try:
                    folder = root / str(number)
                    folder.mkdir()
                    return folder
                except FileExistsError:
                    number += 1
        safe = re.sub(r"[^\w.-]+", "_", run.name)[:80] or "run"
        label = where.task_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{id(run):x}"
        folder = tracked_root() / f"{label}-{safe}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _point(self, run: RunView) -> None:
        """Make this run the one ``resume`` finds for its key, once it holds what it continues."""
        if self._pointed or self.folder is None or self.state.get("count", 0) < self._must_cover:
            return
        if run.call.model_unidentified:  # no later call can match it: no pointer to leave behind
            self._pointed = True
            return
        from ..store.resume import point_to

        point_to(self.state["key"], self.folder)
        self._pointed = True
        if run.earlier is not None:
            run.earlier.mark_resumed(self.folder)

    def progress(self, run: RunView, update: Update) -> None:
        if self.folder is None:
            return
        try:
            self._write(run, update)
            self._point(run)
        except Exception as exc:  # noqa: BLE001
            self._warn(run, exc)

    def _write(self, run: RunView, update: Update) -> None:
        """Append the new examples, then commit: ``self.state`` (and run.json) change only once all is on disk."""
        import copy

        folder = self.folder
        assert folder is not None
        state = copy.deepcopy(self.state)  # what is committed stays as it is until everything below is written
        series_state: dict[str, Any] = state["series"]
        for metric, (_, hi) in update.new.items():
            name = scrub(metric)  # the journal names a metric as the server does: credentials redacted
            entry = series_state.get(name) or {"file": f"m{len(series_state)}", "size": 0, "dense_start": None}
            size = int(entry["size"])
            crcs = entry.setdefault("crc", {})  # per block of the files: a flipped byte is found when read
            source = update.series[metric]
            for start in range(size, hi, 1 << 16):
                indices, values = source.read(start, min(start + (1 << 16), hi))
                if size == 0:  # where its values begin, kept with their checksums too: a moved start is found
                    entry["dense_start"] = crcs["first"] = int(indices[0])
                dense = entry["dense_start"]
                if dense is not None and not (
                    indices[0] == dense + size and indices[-1] == dense + size + len(indices) - 1
                ):
                    import numpy as np  # the first gap: from now on this metric keeps its indices

                    written = np.arange(dense, dense + size, dtype="<i8").tobytes()
                    journal.write_at(folder / f"{entry['file']}.index", 0, written)
                    crcs["index"] = {"crc": extend_crcs([], 0, written), "items": size}
                    entry["dense_start"] = dense = None
                if dense is None:
                    data = indices.astype("<i8").tobytes()
                    journal.write_at(folder / f"{entry['file']}.index", size * 8, data)
                    crcs["index"] = _extended(crcs.get("index"), size, data)
                data = values.astype("<f8").tobytes()
                journal.write_at(folder / f"{entry['file']}.values", size * 8, data)
                crcs["values"] = _extended(crcs.get("values"), size, data)
                size += len(values)
            entry["size"] = size
            series_state[name] = entry
        self._details_backlog.extend(update.details)
        if self._details_backlog:
            lines = _detail_lines(self._details_backlog)
            offset = int(state["details"]["bytes"])
            journal.write_at(folder / journal.DETAILS, offset, lines.encode("ascii"))
            state["details"]["bytes"] = offset + len(lines)
        state["count"] = update.count
        # A copy (the evaluation's thread may add a field), named as the details are written: redacted.
        state["detail_types"] = {scrub(k): v for k, v in dict(run.details.kinds).items()}
        state["duration"] = update.duration
        state["heartbeat"] = time.time()
        clean = scrubber()  # a skipped value's reason quotes it: a credential in it is redacted, as in the warning
        state["skipped"] = {clean("" if k is None else k): [n, clean(first)] for k, (n, first) in run.skipped.items()}
        journal.write_state(folder, state)
        self.state, self._details_backlog = state, []

    def _end_state(self, run: RunView, state: dict[str, Any]) -> None:
        state["status"] = run.status
        state["error"] = None if run.error is None else scrub(f"{type(run.error).__name__}: {run.error}")[:2000]

    def _drop_data(self, run: RunView, where: Where) -> None:
        """A completed run reported to a server is there in full: its examples need not be kept here too.

        The journal keeps its ``run.json`` (status, count), so ``resume``
        sees a completed run and starts afresh. Stopped and failed runs keep
        everything: they may be resumed.
        """
        if run.status != "completed" or self.folder is None or where.session_dir is not None:
            return  # in an offline session, the journal is how the examples are read without unpickling
        state = self.state
        try:
            state["series"], state["details"] = {}, {"file": journal.DETAILS, "bytes": 0}
            state["data"] = f"in the ClearML task (artifact 'examples'); long details whole in {journal.LONG_DETAILS}"
            journal.write_state(self.folder, state)
            for path in self.folder.iterdir():
                if path.suffix in (".values", ".index") or path.name == journal.DETAILS:
                    path.unlink()
        except OSError:
            pass  # it only takes space

    def _carry_long_details(self, earlier: Path, count: int) -> None:
        """Copy the full texts of the resumed run's first ``count`` examples from its journal into this one."""
        assert self._long is not None
        path = earlier / journal.LONG_DETAILS
        if not path.is_file() or path.is_symlink():
            return
        with path.open("rb") as source:  # line by line: memory stays flat however long the texts
            self._copy_lines(source, count)

    def _copy_lines(self, source: BinaryIO, count: int) -> None:
        assert self._long is not None
        for line in source:
            try:
                index = json.loads(line)[0]
            except (ValueError, IndexError, TypeError, KeyError):
                continue  # a line a kill cut short: its example was not committed either
            if isinstance(index, int) and 0 <= index < count and line.endswith(b"\n"):
                self._long.write(line)
        self._long.flush()

    def spill(self, index: int, name: str, text: str) -> bool:
        """Write a detail too long to keep in memory to the journal now (secrets scrubbed); False when it
        cannot be (the journal is not open, or the disk refused it): the run then keeps the text whole."""
        long = self._long
        if long is None:
            return False
        try:
            text = self._scrub(text)
            long.write(json.dumps([index, name, text], ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
            long.flush()  # as durable as the journal: a crash keeps what was yielded
        except (OSError, ValueError):
            return False
        return True

    def finish(self, run: RunView, result: EvalResult, where: Where) -> None:
        """Say how the run ended, now that what it vouches for is on disk: every example (the last
        flush) and ClearML's final report (the sink before this one). Killed before this, the run
        reads as interrupted, and can be resumed."""
        if self.folder is None:
            return
        self._end_state(run, self.state)
        try:
            journal.write_state(self.folder, self.state)
        except Exception as exc:  # noqa: BLE001
            self._warn(run, exc)
        if where.reported:  # ClearML holds the whole run: what was kept for safety may go
            self._drop_data(run, where)

    def close(self, run: RunView, result: EvalResult, where: Where) -> None:
        long, self._long = self._long, None
        if long is not None:
            with contextlib.suppress(OSError):
                long.close()
        journal.release(self._lock_fd)
        self._lock_fd = None
        if run.earlier is not None:
            run.earlier.release()

    def _warn(self, run: RunView, exc: BaseException, starting: bool = False) -> None:
        if self._warned:
            return
        self._warned = True
        if starting:
            warn(
                f"{run.name}: cannot write the run's journal ({type(exc).__name__}: {exc}); the evaluation goes on, "
                "but a crash would lose its examples and it cannot be resumed"
            )
            return
        warn(
            f"{run.name}: cannot write the run's journal to {self.folder} ({type(exc).__name__}: {exc}); "
            "the evaluation goes on (tried again at every flush), but a crash now would lose its examples"
        )


def _extended(record: dict[str, Any] | None, size: int, data: bytes) -> dict[str, Any]:
    """A file's CRC record once ``data`` (8-byte items) is appended after its first ``size`` items."""
    crcs = [] if record is None else record["crc"]
    return {"crc": extend_crcs(crcs, size, data), "items": size + len(data) // 8}


#: Examples per details line at most: a batch of a million is many lines, none near a reader's line cap.
LINE_EXAMPLES = 1024


def _detail_lines(entries: Sequence[Row | Block]) -> str:
    """The journal lines of new details, secrets scrubbed: a batch line (``{"start", "n", "columns"}``) per
    batch, and per run of consecutive single examples, a batch line too (``[index, {field: text}]`` for one
    alone): one ``json.dumps`` for many examples, where a line each cost more than recording them
    (5 µs an example here, so a fast run's last interval made its end seconds long)."""
    clean = scrubber()
    out: list[str] = []

    def column(texts: Sequence[str | None]) -> list[str | None]:
        if clean is unchanged:  # no credentials known: nothing to look for
            return list(texts)
        joined = "\x00".join(t or "" for t in texts)
        if clean(joined) == joined:  # the usual case: nothing to scrub, checked in one pass
            return list(texts)
        return [None if t is None else clean(t) for t in texts]

    def block(start: int, n: int, columns: Mapping[str, Sequence[str | None]]) -> None:
        for lo in range(0, n, LINE_EXAMPLES):
            hi = min(n, lo + LINE_EXAMPLES)
            part = {clean(name): column(texts[lo:hi]) for name, texts in columns.items()}
            out.append(json.dumps({"start": start + lo, "n": hi - lo, "columns": part}, ensure_ascii=True) + "\n")

    def single_rows(rows: list[Row]) -> None:
        if len(rows) == 1:
            index, fields = rows[0]
            out.append(json.dumps([index, {clean(k): clean(v) for k, v in fields.items()}], ensure_ascii=True) + "\n")
            return
        columns: dict[str, list[str | None]] = {}
        for j, (_, fields) in enumerate(rows):
            for name, text in fields.items():
                texts = columns.get(name)
                if texts is None:
                    texts = columns[name] = [None] * len(rows)
                texts[j] = text
        block(rows[0][0], len(rows), columns)

    rows: list[Row] = []
    for entry in entries:
        if rows and (isinstance(entry, Block) or entry[0] != rows[-1][0] + 1 or len(rows) == LINE_EXAMPLES):
            single_rows(rows)
            rows = []
        if isinstance(entry, Block):
            block(entry.start, entry.n, entry.columns)
        else:
            rows.append(entry)
    if rows:
        single_rows(rows)
    return "".join(out)


def _shard_state(run: RunView) -> dict[str, Any]:
    """A shard's place in its evaluation, for ``tracked merge``."""
    if run.shard is None:
        return {}
    index, count, evaluation = run.shard
    return {"shard": [index, count], "evaluation": evaluation}
