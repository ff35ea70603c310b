"""The ClearML sink: one task per run (or the running one).

The progress chart is streamed while the run goes (every
``flush_interval``): with a server, through ``Logger.report_scalar``, so it
grows in the web UI; offline, appended to the session's ``metrics.jsonl``
in ClearML's own event format. Final metrics, the table, the examples
artifact and the summary are reported when the run ends.

ClearML is imported when the first run starts, not at ``import tracked``
(it takes most of a second). Every ClearML call is guarded: a failure here
is recorded on the result (the local sink then saves the run and gives the
one warning), and the evaluation's result is returned all the same.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._secrets import scrub, scrub_frame
from .._values import encodable
from .._warn import warn
from ._clearml_setup import (
    FRAMEWORKS,
    clearml_environ,
    guarded_stdout,
    process_untouched,
    quiet_dependencies,
    restore,
    server_configured,
    server_unreachable,
)

if TYPE_CHECKING:
    import pandas as pd
    from clearml import Logger, Task

    from .._live import Update
    from .._result import EvalResult
    from .._run import Run

#: The end of a run waits for the server at most this many ``server_timeout``s (at least 10 s).
SERVER_WAITS = 6
#: Series name of the final-metrics table under its title in PLOTS.
TABLE_SERIES = "summary"
#: Title of the PLOTS table of per-metric statistics (mean, stderr, 95% CI, std, n, min, max).
STATS_TITLE = "Metric Statistics"
RUNNING_MEAN = "{metric} (running mean)"


def log_metrics(
    logger: Logger, metrics: Mapping[str, Any], title: str = "Final Metrics", series: str = TABLE_SERIES
) -> None:
    """Final metrics as single values (never scalars at iteration 0), and all of them in one table.

    The seed's ``log_metrics_to_clearml``, for code that does not use the
    decorator: ``log_metrics(task.get_logger(), {"token_recall": 0.67})``.

    NaN and infinite numbers are not reported as single values (ClearML
    would write them as 0.0); the table shows them as text.
    """
    import math

    import pandas as pd

    from .._values import InvalidValue, as_number

    rows = []
    for name, value in metrics.items():
        try:
            number = as_number(value)
        except InvalidValue:
            number = None
        if number is not None and math.isfinite(number):
            logger.report_single_value(name=encodable(scrub(str(name))), value=number)
        cell: Any = value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else str(value)
        if isinstance(cell, float) and not math.isfinite(cell):
            cell = str(cell)
        rows.append({"Metric": encodable(scrub(str(name))), "Value": cell})
    table = pd.DataFrame(rows, columns=["Metric", "Value"])
    logger.report_table(title=title, series=series, iteration=0, table_plot=table)


def _nan_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """NaN cells as the text ClearML would write for them, without its pandas FutureWarning."""
    out: pd.DataFrame = table.astype(object).where(table.notna(), "NaN")
    return out


@dataclass
class _Shared:
    """A ClearML task and the tracked runs reporting into it right now.

    ClearML has one task per process. Runs that overlap (nested, in threads,
    in asyncio tasks) share it: the first reports under plain names, each
    later one under its own name as a prefix, and whoever ends last closes
    the task if tracked created it.
    """

    task: Task
    created: bool
    active: set[str] = field(default_factory=set)
    #: Every name a run has used in this task: a later run (even once the earlier ones ended) takes a new one.
    used: set[str] = field(default_factory=set)
    offline_before: bool | None = None
    environ_before: dict[str, str] | None = None


_LOCK = threading.RLock()
_SHARED: dict[str, _Shared] = {}
#: Tasks this process's parent was reporting into when it forked this process: never ours to write into.
_PARENTS: set[str] = set()


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.RLock()  # a fork while another thread held it (creating a task) must not deadlock the child
    _PARENTS.update(_SHARED)
    _SHARED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _TaskInit:
    """``Task.init`` for a run, optionally in a thread of its own with a deadline.

    ClearML retries an API call that goes unanswered for hours. Past the
    deadline the run goes on without ClearML (the journal and the local sink
    keep it); should ClearML finish later after all, its task is closed at
    once, so that no later run joins a task nobody reports into.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self._task: Task | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._done = self._abandoned = False

    def run(self) -> None:
        from clearml import Task

        settings = self._run.settings
        hooks = (sys.excepthook, sys.exit)
        try:
            self._task = Task.init(
                project_name=settings.project,
                task_name=settings.task_name or self._run.name,
                reuse_last_task_id=False,
                auto_connect_arg_parser=False,
                auto_connect_frameworks=dict.fromkeys(FRAMEWORKS, False),
                auto_resource_monitoring=False,
                auto_connect_streams=False,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by task()
            self._error = exc
        with self._lock:
            self._done = True
            abandoned = self._abandoned
        if abandoned:  # too late: nobody reports into it
            sys.excepthook, sys.exit = hooks
            if self._task is not None:
                with contextlib.suppress(Exception):
                    self._task.mark_failed(status_reason="tracked stopped waiting for the server")
                    self._task.close()

    def within(self, seconds: float) -> None:
        worker = threading.Thread(target=self.run, name="tracked-task-init", daemon=True)
        worker.start()
        worker.join(seconds)
        with self._lock:
            if self._done:
                return
            self._abandoned = True
            self._error = TimeoutError(f"the server did not create the task within {seconds:g} s")

    def task(self) -> Task:
        if self._error is not None:
            raise self._error
        assert self._task is not None
        return self._task


class ClearMLSink:
    """Opens (or joins) the ClearML task at the start of a run, reports and releases it at the end."""

    def __init__(self) -> None:
        self.task: Task | None = None
        self.shared: _Shared | None = None
        self.problems: list[str] = []
        #: "" for the first run in a task; the run's (unique) name for runs that overlap it.
        self.prefix = ""
        self._offline: _OfflineScalars | None = None

    def _fail(self, what: str, exc: BaseException) -> None:
        # No warning here: the local sink gives one, saying also where the run went.
        # A step that fails at every flush is one problem, not one per flush.
        head = f"ClearML {what} failed"
        if not any(problem.startswith(head) for problem in self.problems):
            self.problems.append(f"{head} ({type(exc).__name__}: {exc})")

    def start(self, run: Run) -> None:
        try:
            with _LOCK, quiet_dependencies():
                self._open(run)
        except Exception as exc:  # noqa: BLE001 - ClearML must never break the evaluation
            self.task = None
            self._fail("task creation", exc)

    def _open(self, run: Run) -> None:
        from clearml import Task

        if _PARENTS:  # not even asking ClearML: in a fork, its state (and locks) are the parent's
            raise RuntimeError(
                f"this process was forked while its parent's evaluation reported into task {min(_PARENTS)}; "
                "a child does not write into its parent's task"
            )
        current: Task | None = Task.current_task()
        if current is None:
            shared = self._create(run)
        else:
            shared = _SHARED.setdefault(str(current.id), _Shared(task=current, created=False))
        if shared.active:
            self.prefix = _unique(run.name, shared.used)
        shared.active.add(self.prefix or run.name)
        shared.used.add(self.prefix or run.name)
        self.task, self.shared = shared.task, shared
        run.task_id = str(shared.task.id)
        folder = shared.task.get_offline_mode_folder() if Task.is_offline() else None
        if folder is not None:
            run.session_dir = Path(folder)
            self._offline = _OfflineScalars(Path(folder), str(shared.task.id), run.settings.progress_title)

    def _create(self, run: Run) -> _Shared:
        from clearml import Task

        environ_before, offline_before = clearml_environ(), Task.is_offline()
        offline = run.settings.offline
        if offline is None:
            offline = not server_configured()
        if not offline:
            problem = server_unreachable(run.settings.server_timeout)
            if problem:
                warn(f"the ClearML server is configured but {problem}; writing an offline session instead")
                offline = True
        if offline != offline_before:
            Task.set_offline(offline)
        # The forked reporter costs 1-3 ms per event and ~10 s at close;
        # in-process it is ~25 us and ~0.02 s. Class attribute, read by Task.init.
        Task._report_subprocess_enabled = False  # type: ignore[assignment]
        init = _TaskInit(run)
        try:
            with process_untouched(), guarded_stdout(quiet=not run.settings.verbose):
                if offline:
                    init.run()
                else:  # a server that takes logins but leaves task creation unanswered must not hold the evaluation
                    init.within(max(10.0, SERVER_WAITS * run.settings.server_timeout))
            task = init.task()
        except BaseException:
            restore(offline_before, environ_before)
            raise
        shared = _Shared(task=task, created=True, offline_before=offline_before, environ_before=environ_before)
        _SHARED[str(task.id)] = shared
        return shared

    def name(self, metric: str) -> str:
        """A metric's name on the server: prefixed, credentials redacted, a lone surrogate escaped."""
        return encodable(scrub(f"{self.prefix}/{metric}" if self.prefix else metric))

    def finish(self, run: Run, result: EvalResult) -> None:
        with quiet_dependencies():
            self._finish_within_deadline(run, result)

    def _finish_within_deadline(self, run: Run, result: EvalResult) -> None:
        try:
            if self._offline is not None or self.task is None:
                self._finish(run, result)
                return
            # With a server, ClearML waits for every answer (for ever, if the server stalls): the
            # report runs in a thread of its own, and the result does not wait past the deadline.
            deadline = max(10.0, SERVER_WAITS * run.settings.server_timeout)
            worker = threading.Thread(target=self._finish, args=(run, result), name="tracked-report", daemon=True)
            worker.start()
            worker.join(deadline)
            if worker.is_alive():
                self._fail("reporting to the server", TimeoutError(f"no answer within {deadline:g} s"))
                _never_wait_at_exit(self.task)
        finally:  # every failure, from start to close, goes on the result for the local sink
            result._problems.extend(self.problems)

    def _finish(self, run: Run, result: EvalResult) -> None:
        task, shared = self.task, self.shared
        if task is None or shared is None:
            return
        from .console import summary_text

        result._task_id = str(task.id)
        result._session_dir, result._prefix = run.session_dir, self.prefix  # every run sharing the task
        try:
            logger = task.get_logger()
            named = {self.name(metric): value for metric, value in result.items()}
            log_metrics(logger, named, run.settings.table_title, series=self.prefix or TABLE_SERIES)
            self._report_statistics(logger, run, result)
            if not run.halted:  # ending with the process (exit, signal): the examples are in the journal already
                self._save_examples(task, result)
                self._save_long_details(task, run)
            logger.report_text(summary_text(run, result), print_console=False)
            if run.call.params:
                # Typed as ``Task.connect`` records them (int, float, bool, str): the values are text (redacted,
                # shortened), so the types go beside them. ``param_types`` comes with CallInfo (_call.py);
                # without it every argument is a str, as before.
                types = run.call.param_types
                task.update_parameters(
                    {f"Args/{self.name(k)}": v for k, v in run.call.params.items()},
                    **{"__parameters_types": {f"Args/{self.name(k)}": types.get(k, "str") for k in run.call.params}},
                )
            task.set_user_properties(**{self.name("tracked_status"): run.status})
            logger.flush(wait=True)
        except Exception as exc:  # noqa: BLE001
            self._fail("reporting", exc)
        if not self.problems:  # the run is in ClearML in full: what kept it safe until now may go
            for reported in run.when_reported:
                reported()
        with _LOCK:
            shared.active.discard(self.prefix or run.name)
            last = not shared.active
            if last:
                _SHARED.pop(str(task.id), None)
        if last and shared.created:
            self._close(shared, run, result)

    def progress(self, run: Run, update: Update) -> None:
        """Stream the new chart points: the chart grows while the run goes."""
        task = self.task
        if task is None or not update.points:
            return
        try:
            offline = self._offline
            logger = task.get_logger() if offline is None else None
            report = _scalar_reporter(task, logger) if logger is not None else None
            title = run.settings.progress_title
            for metric, (iterations, values, mean_iterations, means) in update.points.items():
                times = update.times.get(metric)
                for series_name, xs, ys, ts in (
                    (self.name(metric), iterations, values, None if times is None else times[0]),
                    (
                        self.name(RUNNING_MEAN.format(metric=metric)),
                        mean_iterations,
                        means,
                        None if times is None else times[1],
                    ),
                ):
                    # Each point stamped with when its example was scored (ClearML's wall-time axis), in ms.
                    stamps = [int(update.time * 1000)] * len(xs) if ts is None else (ts * 1000).astype(int).tolist()
                    if offline is not None:
                        offline.write(series_name, xs.tolist(), ys.tolist(), stamps)
                    elif report is not None:
                        for iteration, value, stamp in zip(xs.tolist(), ys.tolist(), stamps, strict=True):
                            report(title, series_name, value, iteration, stamp)
            if logger is not None and not update.final:
                logger.flush()  # hand the points to ClearML's sender now, not at its next period
        except Exception as exc:  # noqa: BLE001
            self._fail("streaming the progress chart", exc)

    def _save_examples(self, task: Task, result: EvalResult) -> None:
        """Every example's scores and details, as the artifact ``examples``.

        Pickled DataFrame: numpy column blocks written as they are (about
        0.1 s for a million rows, where csv.gz takes seconds), restored by
        ``pandas.read_pickle`` and by ClearML's ``artifact.get()``, and it
        needs no dependency beyond pandas (parquet would need pyarrow).
        """
        examples = scrub_frame(result.examples)
        task.upload_artifact(
            self.name("examples"),
            examples,
            extension_name=".pickle",
            wait_on_upload=True,
            preview=f"{len(examples):,} examples; columns: {', '.join(map(str, examples.columns))}",
        )

    def _report_statistics(self, logger: Logger, run: Run, result: EvalResult) -> None:
        """Beside the seed's elements: the ``Metric Statistics`` table and a ``<metric>_stderr`` single value
        per yielded metric; with ``group_by``, a ``Metrics by <field>`` table and ``<metric>/<group>`` means."""
        stats, settings = result.stats, run.settings
        if stats.empty:
            return
        series = self.prefix or TABLE_SERIES
        for metric, stderr in stats["stderr"].items():
            if math.isfinite(stderr):
                logger.report_single_value(name=self.name(f"{metric}_stderr"), value=float(stderr))
        kinds: dict[str, str] = stats.attrs.get("interval", {})
        clustered = f", clustered by {settings.cluster_by}" if stats.attrs.get("clustered") else ""
        table = stats.reset_index().rename(columns={"metric": "Metric"})
        table["interval"] = [f"{kinds.get(str(m), 'normal')}{clustered}" for m in table["Metric"]]
        logger.report_table(title=STATS_TITLE, series=series, iteration=0, table_plot=scrub_frame(_nan_as_text(table)))
        groups = result.group_stats
        if groups.empty:
            return
        for group, metric, mean in zip(groups["group"], groups["metric"], groups["mean"], strict=True):
            if math.isfinite(mean):
                logger.report_single_value(name=self.name(f"{metric}/{group}"), value=float(mean))
        title = f"Metrics by {settings.group_by}"
        logger.report_table(title=title, series=series, iteration=0, table_plot=scrub_frame(_nan_as_text(groups)))

    def _save_long_details(self, task: Task, run: Run) -> None:
        """Details too long to keep in memory are previews in ``examples``; the full texts go beside it.

        Offline, they are in the session already (its journal); with a server, the file is uploaded as it is.
        """
        from .._journal import LONG_DETAILS

        long = None if run.journal_dir is None else run.journal_dir / LONG_DETAILS
        if self._offline is None and long is not None and long.is_file() and long.stat().st_size:
            task.upload_artifact(self.name("long details"), artifact_object=long, wait_on_upload=True)

    def _close(self, shared: _Shared, run: Run, result: EvalResult) -> None:
        task = shared.task
        try:
            folder = run.session_dir
            with guarded_stdout(quiet=not run.settings.verbose):
                task.close()
            if run.status == "failed":
                task.mark_failed(status_reason=f"{type(run.error).__name__}: {run.error}"[:200], force=True)
            elif run.status == "stopped":
                task.mark_stopped(force=True)
            if folder is not None:
                result._session_dir = Path(folder)
        except Exception as exc:  # noqa: BLE001
            self._fail("closing the task", exc)
        finally:
            restore(shared.offline_before, shared.environ_before)


def _scalar_reporter(task: Task, logger: Logger) -> Callable[[str, str, float, int, int], None]:
    """``report(title, series, value, iteration, timestamp_ms)``: ``Logger.report_scalar`` with the point's own time.

    ClearML stamps each scalar with the time of the call, and a streamed
    point is reported at the next flush, seconds after its example was
    scored. Its reporter takes a ``ScalarEvent`` with a timestamp (ClearML
    2.1 internals, the path ``report_scalar`` itself takes); where they
    differ, the points keep the call's time rather than being lost.
    """
    try:
        from clearml.backend_interface.metrics.events import ScalarEvent

        reporter = task._reporter
        normalize, send = reporter._normalize_name, reporter._report
        touch = logger._touch_title_series
    except (ImportError, AttributeError):

        def plain(title: str, series: str, value: float, iteration: int, stamp: int) -> None:
            logger.report_scalar(title=title, series=series, value=value, iteration=iteration)

        return plain

    def report(title: str, series: str, value: float, iteration: int, stamp: int) -> None:
        touch(title, series)
        send(
            ScalarEvent(
                metric=normalize(title), variant=normalize(series), value=value, iter=iteration, timestamp=stamp
            )
        )

    return report


def _never_wait_at_exit(task: Task) -> None:
    """The server stopped answering: ClearML's exit hooks would wait for it again, for ever.

    Best effort on ClearML's internals (2.1): its task exit hook returns at
    once when it believes another thread ran it, and its reporter stops
    waiting once its "done" event is set. Its sender thread may still hold
    the exit until its own HTTP timeout (README: "When things go wrong").
    What was not sent is in the local save (``saved_to``) and the journal.
    """
    with contextlib.suppress(Exception):
        task._at_exit_called = True
    with contextlib.suppress(Exception):
        task._reporter._report_service._done_ev.set()


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}#{number}"
    return candidate


class _OfflineScalars:
    """Appends progress points straight to the offline session, one batch line per series.

    ``Logger.report_scalar`` builds four objects per point (~100 us each:
    3 s for a million-example run's 30,000 points). The session file is
    JSON arrays of events, the same ones ClearML writes and
    ``import_offline_session`` uploads line by line; formatting them from
    the numbers directly keeps streaming cheap. Each line is one
    ``O_APPEND`` write, so it never interleaves with ClearML's own lines.
    """

    def __init__(self, folder: Path, task_id: str, title: str) -> None:
        import json

        self._path = folder / "metrics.jsonl"
        self._head = (
            f'"type": "training_stats_scalar", "task": {json.dumps(task_id)}, '
            f'"metric": {json.dumps(title)}, "variant": '
        )
        self._dumps = json.dumps

    def write(self, series: str, iterations: list[int], values: list[float], stamps: list[int]) -> None:
        """Append one series' points; ``stamps``: each point's time in ms, as ClearML's ``timestamp``."""
        import os

        if not iterations:
            return
        head = f"{self._head}{self._dumps(series)}, "
        # repr() of a finite float is valid JSON; inf/nan would not be (nor would ClearML take them).
        events = ", ".join(
            f'{{"timestamp": {t}, {head}"iter": {i}, "value": {v!r}}}'
            for i, v, t in zip(iterations, values, stamps, strict=True)
            if math.isfinite(v)
        )
        if not events:
            return
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        try:
            data = memoryview(f"[{events}]\n".encode())
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            with contextlib.suppress(OSError):  # no half line left behind (a full disk): the file stays readable
                os.ftruncate(fd, size)
            raise
        finally:
            os.close(fd)
