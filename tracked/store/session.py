"""Read an offline ClearML session back: the one place that parses session files.

A session is a folder ``<cache>/offline/<task-id>/`` (or its ``.zip``) with
``task.json``, ``metrics.jsonl`` and ``log.jsonl``. Each line of the jsonl
files is a JSON array: one batch of events as ClearML flushed it. tracked
adds the run's journal (``tracked/0/``, see ``tracked/store/journal.py``): it
tells a run still going from one whose process died (``interrupted``), and
holds the examples recorded so far. A run recorded without ClearML (its
task never came up) is its journal folder alone, read the same way: its
task is rebuilt from the journal.

    >>> s = read_session(result.session_dir)
    >>> s.single_values["token_recall"], s.scalars["Training Progress"]["token_recall"][:3]
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..common.errors import SessionError
from .session_files import MAX_LINE_BYTES, ZipSource, events, open_files

if TYPE_CHECKING:
    import pandas as pd

    from .journal import Journal

#: ClearML marks single values with this iteration, under the metric "Summary".
SINGLE_VALUE_ITER = -(2**31)
SINGLE_VALUE_METRIC = "Summary"


@dataclass(frozen=True)
class Table:
    """A table reported with ``Logger.report_table``, as ClearML stored it."""

    title: str
    series: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class Session:
    """What an offline session holds, parsed once."""

    path: Path
    task: dict[str, Any]
    #: title -> series -> [(iteration, value)], in reported order.
    scalars: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    #: name -> value (``Logger.report_single_value``).
    single_values: dict[str, float] = field(default_factory=dict)
    #: title -> table (the last one reported under that title).
    tables: dict[str, Table] = field(default_factory=dict)
    #: Console text (``report_text`` and captured output), one message per line group.
    console: str = ""
    #: Lines that could not be parsed (a truncated file, a crash mid-write).
    problems: list[str] = field(default_factory=list)
    #: The run's journal (status while it goes, examples recorded so far), when tracked wrote one.
    journal: Journal | None = None

    @property
    def id(self) -> str:
        return str(self.task.get("id", self.path.name))

    @property
    def name(self) -> str:
        return str(self.task.get("name", ""))

    @property
    def project(self) -> str:
        return str(self.task.get("project_name", ""))

    @property
    def status(self) -> str:
        """completed, failed, stopped, running, or interrupted (its process died); 'unknown' for other sessions."""
        if self.journal is not None:
            return self.journal.status
        props = self.task.get("hyperparams", {}).get("properties", {})
        return str(props.get("tracked_status", {}).get("value", "unknown"))

    @property
    def resumed_by(self) -> str | None:
        """The session (or journal folder) of the run that continued this one (``resume=True``), or None."""
        by = None if self.journal is None else self.journal.state.get("resumed_by")
        if not isinstance(by, str) or not by:
            return None
        folder = Path(by)
        # A journal inside an offline session (<session>/tracked/<n>) stands for its session.
        return str(folder.parent.parent) if folder.parent.name == "tracked" else by

    @property
    def superseded(self) -> bool:
        """A part another run continued (``resumed_by``): that run holds all of its examples and more."""
        return self.resumed_by is not None and self.status != "completed"

    @property
    def error(self) -> str:
        """Why a failed run failed (its exception, as the journal recorded it), or ""."""
        if self.journal is not None and self.journal.state.get("error"):
            return str(self.journal.state["error"])
        props = self.task.get("hyperparams", {}).get("properties", {})
        return str(props.get("tracked_error", {}).get("value", ""))

    @property
    def num_examples(self) -> int | None:
        """Examples recorded so far (all of them once the run ended), when tracked wrote a journal."""
        return None if self.journal is None else self.journal.count

    def examples(self, details: Collection[str] | None = None) -> pd.DataFrame:
        """The examples recorded in the journal (scores and details), one row per example; without a journal,
        the examples artifact (parquet, feather or csv.gz; never a pickle); else empty.

        ``details``: the detail fields to read (all when None): ``--paired`` reads the ids alone, not the texts.
        The details file is streamed into columns, so memory follows the columns kept, not the file."""
        import numpy as np
        import pandas as pd

        from ..common.values import encodable, typed_column

        journal = self.journal
        if journal is None:  # a session without one (it could not be written): the examples artifact
            from .artifact import examples_artifact

            found = examples_artifact(self.path, self.task, self.problems)
            empty: pd.DataFrame = pd.DataFrame() if found is None else found
            return empty
        count = journal.count
        columns: dict[str, Any] = {}
        for name, (indices, values) in journal.series.items():
            if len(indices) == count and (not count or (indices[0] == 0 and (indices[1:] > indices[:-1]).all())):
                column = values  # every example scored, once each, in order: the column is the values, no copy
            else:
                column = np.full(count, np.nan)
                keep = indices < count
                column[indices[keep]] = values[keep]
            columns[encodable(name)] = column
        frame: pd.DataFrame = pd.DataFrame(columns, index=pd.RangeIndex(count, name="index"), copy=False)
        said = len(journal.problems)
        kinds = detail_types(journal.state)
        texts = journal.detail_columns(details, kinds)  # int and float details come back parsed
        self.problems.extend(f"journal: {problem}" for problem in journal.problems[said:])
        if texts:
            labels = frame.attrs["details"] = []  # which columns are details, however numeric (``tracked.merge``)
            for name, column in texts.items():
                typed = typed_column(column, kinds.get(name)) if column.dtype == object else column
                label = name if name not in frame.columns else f"{name} (detail)"
                try:
                    frame[label] = typed
                except UnicodeEncodeError:  # a lone surrogate, which pandas' UTF-8 strings cannot hold: escaped
                    frame[encodable(label)] = [encodable(t) if isinstance(t, str) else t for t in typed]
                    label = encodable(label)
                labels.append(label)
        return frame

    @property
    def statistics(self) -> dict[str, dict[str, float]]:
        """metric -> mean, stderr, ci_low, ci_high, n ... from the ``Metric Statistics`` table (none before it)."""
        # A table of that title may be another: the final metrics, titled so by table_title in an older session.
        tables = [t for t in self.tables.values() if t.title == "Metric Statistics" and "stderr" in t.header]
        if not tables or tables[0].header[0] != "Metric":
            return {}
        table = tables[0]
        out: dict[str, dict[str, float]] = {}
        for row in table.rows:
            values: dict[str, float] = {}
            for name, cell in zip(table.header[1:], row[1:], strict=False):
                try:
                    values[name] = float(cell)
                except (TypeError, ValueError, OverflowError):
                    continue
            out[str(row[0])] = values
        return out

    @property
    def stderrs(self) -> dict[str, float]:
        """metric -> its standard error, where the run recorded one."""
        return {
            metric: row["stderr"]
            for metric, row in self.statistics.items()
            if math.isfinite(row.get("stderr", math.nan))
        }

    @property
    def hyperparameters(self) -> dict[str, dict[str, str]]:
        """section -> name -> value, as strings (ClearML stores them so)."""
        return {
            section: {name: str(entry.get("value", "")) for name, entry in params.items()}
            for section, params in self.task.get("hyperparams", {}).items()
        }


def detail_types(state: dict[str, Any]) -> dict[str, str]:
    """field -> the type its details were yielded with, as run.json records it; {} when it is edited away."""
    kinds = state.get("detail_types")
    return {str(k): v for k, v in kinds.items() if isinstance(v, str)} if isinstance(kinds, dict) else {}


def _journal(path: Path, problems: list[str]) -> Journal | None:
    """The session's first journal (the run that opened the task), or None."""
    from . import journal

    try:
        if path.is_dir():
            if _alone(path):  # a run recorded without ClearML: its journal folder itself
                return journal.read_journal(path)
            folder = path / journal.FOLDER / "0"
            if folder.parent.is_symlink() or folder.is_symlink():  # another run's journal, under this one's name
                problems.append(f"journal: refused, {journal.FOLDER}/0 is a link, not the session's own folder")
                return None
            return journal.read_journal(folder) if (folder / journal.STATE).is_file() else None
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(f"{journal.FOLDER}/0/{journal.STATE}"):
                    return journal.read_journal(ZipSource(path, name[: -len(journal.STATE)]))
    except SessionError as exc:
        problems.append(f"journal: {exc}")
    except OSError as exc:  # a FIFO, device or link in place of a file: refused, never waited on
        problems.append(f"journal: unreadable ({exc})")
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError, zipfile.BadZipFile) as exc:
        problems.append(
            f"journal: {journal.STATE} is not readable ({type(exc).__name__}); the run's examples are not shown"
        )
    return None


def _alone(path: Path) -> bool:
    """``path`` is a run's journal folder of its own (a run recorded without ClearML), not a session."""
    from . import journal

    return path.is_dir() and (path / journal.STATE).is_file() and not (path / "task.json").exists()


def read_session(path: str | Path, events: bool = True) -> Session:
    """Parse the offline session at ``path`` (a session folder or its zip, or the journal folder of a run
    recorded without ClearML).

    ``events=False`` reads the task and the journal only, not the charts and console (``tracked merge``).
    """
    path = Path(path)
    problems: list[str] = []
    journal = _journal(path, problems)
    try:
        with open_files(path) as files:
            task = _task(path, files, journal, problems)
            session = _parse(path, task, files if events else {})
    except (OSError, zipfile.BadZipFile) as exc:
        raise SessionError(f"{path}: cannot read ({exc})") from None
    session.problems[:0] = problems
    session.journal = journal
    if journal is not None:
        recounted = [journal.recounted] if journal.recounted else []
        session.problems.extend(f"journal: {problem}" for problem in [*journal.problems, *recounted])
        if not session.single_values:  # not ended (running, or died): the means over the examples recorded
            session.single_values = {
                **journal.means(),
                "num_examples": float(journal.count),
                "duration_seconds": float(journal.state.get("duration", 0.0)),
            }
    return session


def _task(
    path: Path, files: dict[str, Callable[[], IO[bytes]]], journal: Journal | None, problems: list[str]
) -> dict[str, Any]:
    """The task ClearML wrote; rebuilt from the run's journal when ``task.json`` is missing or damaged
    (a kill while ClearML rewrites it at the end of a run leaves it empty), with a problem saying so."""
    try:
        return _read_task(path, files)
    except SessionError as exc:
        if journal is None:
            raise
        if "task.json" in files or not _alone(path):  # a session's task lost, not a run recorded without one
            problems.append(f"{str(exc).removeprefix(f'{path}: ')}; its task is rebuilt from the run's journal")
    state = journal.state
    params = state.get("params")
    args = {str(k): {"value": str(v)} for k, v in params.items()} if isinstance(params, dict) else {}
    return {
        "id": str(state.get("task_id") or path.name.removesuffix(".zip")),
        "name": str(state.get("name", "")),
        "project_name": str(state.get("project", "")),
        "hyperparams": {"Args": args} if args else {},
    }


def _read_task(path: Path, files: dict[str, Callable[[], IO[bytes]]]) -> dict[str, Any]:
    if "task.json" not in files:
        raise SessionError(f"{path}: not an offline ClearML session (no task.json)")
    with files["task.json"]() as stream:
        text = stream.read(MAX_LINE_BYTES + 1)
    if len(text) > MAX_LINE_BYTES:
        raise SessionError(f"{path}: task.json is larger than {MAX_LINE_BYTES // 2**20} MB")
    try:
        task = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SessionError(f"{path}: task.json is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(task, dict):
        raise SessionError(f"{path}: task.json is not a task")
    for key in ("hyperparams",):  # a mapping where ClearML writes one, or nothing
        if key in task and not isinstance(task[key], dict):
            del task[key]
    hyperparams = task.get("hyperparams", {})
    task["hyperparams"] = {k: v for k, v in hyperparams.items() if isinstance(v, dict)}
    return task


def _parse(path: Path, task: dict[str, Any], files: dict[str, Callable[[], IO[bytes]]]) -> Session:
    session = Session(path=path, task=task)
    for event in events(files, "metrics.jsonl", session.problems):
        kind, title, series = event.get("type"), str(event.get("metric", "")), str(event.get("variant", ""))
        if kind == "training_stats_scalar":
            try:
                value, iteration = float(event.get("value", "nan")), int(event.get("iter", 0))
            except (TypeError, ValueError, OverflowError):
                session.problems.append(f"metrics.jsonl: unreadable scalar event {title}/{series}")
                continue
            if title == SINGLE_VALUE_METRIC and iteration == SINGLE_VALUE_ITER:
                session.single_values[series] = value
            else:
                session.scalars.setdefault(title, {}).setdefault(series, []).append((iteration, value))
        elif kind == "plot":
            table = parse_table(title, series, event.get("plot_str", ""))
            if table is not None:
                keep_table(session.tables, table)
    messages = [str(e.get("msg", "")) for e in events(files, "log.jsonl", session.problems)]
    session.console = "\n".join(messages)
    return session


def keep_table(tables: dict[str, Table], table: Table) -> None:
    """Add ``table`` under its title; a table reported again (its title, series and columns) replaces the
    earlier one, as on the server. Another table under a title already taken (the final metrics titled like
    the statistics by ``table_title``, runs sharing a task) is kept too, as ``<title> (2)`` ..., never hidden."""
    key, number = table.title, 1
    while key in tables and (tables[key].series, tables[key].header) != (table.series, table.header):
        number += 1
        key = f"{table.title} ({number})"
    tables[key] = table


def parse_table(title: str, series: str, plot_str: Any) -> Table | None:
    try:
        plot = json.loads(plot_str) if isinstance(plot_str, str) else plot_str
        data = plot["data"][0]
        if data.get("type") != "table":
            return None
        header = [h[0] if isinstance(h, list) and h else h for h in data["header"]["values"]]
        columns = data["cells"]["values"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return None
    rows = [list(row) for row in zip(*columns, strict=False)]
    return Table(title=title, series=series, header=[str(h) for h in header], rows=rows)
