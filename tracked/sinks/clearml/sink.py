"""The ClearML sink: one task per run (or the running one).

The progress chart is streamed while the run goes (every
``flush_interval``): with a server, through ClearML's reporter, so it grows
in the web UI; offline, appended to the session's ``metrics.jsonl`` in
ClearML's own event format (``stream``). Final metrics, the tables, the
examples artifact and the summary are reported when the run ends
(``report``); the task itself is made or joined in ``task``.

ClearML is imported when the first run starts, not at ``import tracked``
(it takes most of a second). Every ClearML call is guarded: a failure here
is returned as a problem (the local sink then saves the run and gives the
one warning), and the evaluation's result is returned all the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...common.names import RUNNING_MEAN
from ...common.secrets import scrub
from ...common.values import encodable
from ...recording.sink import Where
from .archive import quick_zip
from .model import ids, link_model, report_on_model
from .plots import report_examples
from .process import guarded_stdout, quiet_dependencies, restore
from .report import (
    TABLE_SERIES,
    final_title,
    log_metrics,
    report_statistics,
    report_step,
    save_examples,
    save_long_details,
)
from .repository import Detection
from .stream import OfflineScalars, scalar_reporter
from .task import Creation, Shared, deadline, join, leave, never_wait_at_exit

if TYPE_CHECKING:
    from clearml import Task

    from ...common.result import EvalResult
    from ...recording.sink import RunView, Update


#: Seconds a run ended by the exit hook or a signal's handler waits for a task still being made.
HALTED_WAIT_S = 4.0

#: Sections of a task that are not an evaluation's: its script's arguments, ClearML's own, the properties.
_HOST_SECTIONS = frozenset(("Args", "General", "properties", "Hydra", "TF_DEFINE"))


def _typed(text: str, kind: str) -> Any:
    """A recorded argument back as its type, so that ``Task.connect`` records that type (text otherwise)."""
    try:
        if kind == "bool":
            return text == "True"
        if kind in ("int", "float"):
            return int(text) if kind == "int" else float(text)
    except ValueError:
        pass
    return text


class ClearMLSink:
    """Opens (or joins) the ClearML task at the start of a run, reports and releases it at the end.

    ``background``: the task is made in a thread of its own while the evaluation scores its first examples
    (``ready`` says when it is there; the chart's points gathered meanwhile are streamed then); otherwise
    ``start`` makes it."""

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._creation: Creation | None = None
        #: Progress handed over while the task was being made: streamed once it is.
        self._backlog: list[Update] = []
        self.task: Task | None = None
        self.shared: Shared | None = None
        self.problems: list[str] = []
        #: "" for the first run in a task; the run's (unique) name for runs that overlap it.
        self.prefix = ""
        #: The offline session folder, when the task is offline.
        self.session_dir: Path | None = None
        #: The whole run is in ClearML (final metrics, examples), as far as ClearML said.
        self.reported = False
        self._offline: OfflineScalars | None = None
        #: The progress chart's title: one per step, so that the steps' examples never overwrite each other.
        self.progress_title = ""
        #: The end's deadline with a server (monotonic seconds), and the thread reporting to it.
        self._by = 0.0
        self._worker: threading.Thread | None = None
        #: The script section's detection, for a task tracked made (``reproducible``).
        self._detection: Detection | None = None

    def _fail(self, what: str, exc: BaseException) -> None:
        # No warning here: the local sink gives one, saying also where the run went.
        # A step that fails at every flush is one problem, not one per flush.
        head = f"ClearML {what} failed"
        if not any(problem.startswith(head) for problem in self.problems):
            self.problems.append(f"{head} ({type(exc).__name__}: {exc})")

    def _where(self) -> Where:
        return Where(
            task_id=None if self.task is None else str(self.task.id),
            session_dir=self.session_dir,
            prefix=self.prefix,
            problems=tuple(self.problems),
            reported=self.reported and not self.problems,
        )

    def start(self, run: RunView, where: Where) -> Where | None:
        step = run.settings.step
        self.progress_title = run.settings.progress_title + ("" if step is None else f" (step {step})")
        if self.background:
            self._creation = Creation(run.settings, run.name)
            return None
        from clearml import Task

        try:
            with quiet_dependencies():
                shared, prefix = join(run.settings, run.name)
                folder = shared.task.get_offline_mode_folder() if Task.is_offline() else None
        except Exception as exc:  # noqa: BLE001 - ClearML must never break the evaluation
            self._fail("task creation", exc)
            return None
        if shared.created and run.settings.reproducible:
            self._detection = Detection(shared.task)
        return self._made(run, shared, prefix, folder)

    def _made(self, run: RunView, shared: Shared, prefix: str, folder: str | None) -> Where:
        self.shared, self.prefix, self.task = shared, prefix, shared.task
        task = shared.task
        if folder is not None:
            self.session_dir = Path(folder)
            self._offline = OfflineScalars(self.session_dir, str(task.id), self.progress_title)
        return Where(task_id=str(task.id), session_dir=self.session_dir, prefix=self.prefix)

    def ready(self, run: RunView, ending: bool) -> Where | None:
        """Once the task made in the background is there (or could not be made): what it is, said once.

        ``ending``: the run is ending; it waits for the task at most as long as for a server's answer
        (a run ended by the exit hook or a signal's handler: a few seconds), then goes on without ClearML."""
        creation = self._creation
        if creation is None:
            return None
        if not ending:
            return self._started(run, creation) if creation.wait(0) else None
        # The creation has a deadline of its own (the server's login, then its task), well within twice the
        # end's; it says why it failed. Ended by the exit hook or a signal's handler (``halted``), the process
        # gives its runs a few seconds in all: the task is waited for only part of them.
        wait = HALTED_WAIT_S if run.halted else 2 * deadline(run.settings)
        if not creation.wait(wait) and creation.abandon():
            self._creation, self._backlog = None, []
            self._fail("task creation", TimeoutError("the run ended before ClearML had made its task"))
            return Where(problems=tuple(self.problems))
        return self._started(run, creation)

    def _started(self, run: RunView, creation: Creation) -> Where:
        self._creation = None
        if creation.shared is None:
            error = creation.error or RuntimeError("no task")
            if not isinstance(error, Exception):  # an interrupt inside ClearML's thread: not the run's
                error = RuntimeError(f"{type(error).__name__} while creating the task")
            self._backlog = []
            self._fail("task creation", error)
            return Where(problems=tuple(self.problems))
        self._detection = creation.detection
        return self._made(run, creation.shared, creation.prefix, creation.folder)

    def name(self, metric: str) -> str:
        """A metric's name on the server: prefixed, credentials redacted, a lone surrogate escaped."""
        return encodable(scrub(f"{self.prefix}/{metric}" if self.prefix else metric))

    def finish(self, run: RunView, result: EvalResult, where: Where) -> Where:
        """Report the final metrics, tables, examples and summary (the task stays open: see ``close``)."""
        self._by = time.monotonic() + deadline(run.settings)
        self._worker = self._within(run, self._report, run, result, where)
        return self._where()

    def close(self, run: RunView, result: EvalResult, where: Where) -> Where:
        """Let go of the task; the last run in a task tracked created closes it (offline: zips the session,
        after the journal said how the run ended)."""
        if self._worker is not None and self._worker.is_alive():
            return self._where()  # the report is stuck on the server: closing would wait for it too
        self._within(run, self._release, run)
        return self._where()

    def _within(self, run: RunView, step: Callable[..., None], *args: Any) -> threading.Thread | None:
        """Run ``step`` now offline; with a server, in a thread of its own, waiting at most until the end's
        deadline (ClearML waits for every answer, for ever if the server stalls). The thread, if left."""
        with quiet_dependencies():
            if self._offline is not None or self.task is None:
                step(*args)
                return None
            worker = threading.Thread(target=step, args=args, name="tracked-report", daemon=True)
            worker.start()
            worker.join(max(0.1, self._by - time.monotonic()))
            if worker.is_alive():
                self._fail("reporting to the server", TimeoutError(f"no answer within {deadline(run.settings):g} s"))
                never_wait_at_exit(self.task)
            return worker

    def _report(self, run: RunView, result: EvalResult, where: Where) -> None:
        task, shared = self.task, self.shared
        if task is None or shared is None:
            return
        from ..console import summary_text

        if self._detection is not None and not self._detection.settle():
            from ...common.warn import warn
            from .repository import GRACE_S

            warn(
                f"{run.name}: ClearML's repository and package detection took longer than {GRACE_S:g} s; the task "
                "has no script section (reproducible=False, or TRACKED_REPRODUCIBLE=0, turns it off)"
            )
        series, step = self.prefix or TABLE_SERIES, run.settings.step
        at = 0 if step is None else step  # each step's tables are the plots of its iteration: kept apart
        try:
            logger = task.get_logger()
            named = {self.name(metric): value for metric, value in result.items()}
            title, renamed = final_title(run.settings)
            if renamed:
                from ...common.warn import warn

                warn(f"{run.name}: table_title={run.settings.table_title!r} is a table of tracked's own; the final "
                     f"metrics' table is titled {title!r}")  # fmt: skip
            log_metrics(logger, named, title, series=series, iteration=at)
            if step is not None:
                report_step(logger, encodable(scrub(run.name)), result, step, self.name)
            report_statistics(logger, run, result, self.name, series, iteration=at)
            if not run.halted:  # ending with the process (exit, signal): the examples are in the journal already
                report_examples(logger, result, self.name, series, at)
                save_examples(task, result, self.name, "examples" if step is None else f"examples (step {step})")
                if self._offline is None:  # offline, the session's journal holds the long details
                    save_long_details(task, where.journal_dir, self.name)
            logger.report_text(summary_text(run, result), print_console=False)
            call = run.call
            if call.params or call.clearml_model or call.clearml_dataset:
                self._parameters(task, run, shared.created)
            if call.clearml_model and self._offline is None:  # models live on the server
                link_model(task, call.clearml_model)
                report_on_model(call.clearml_model, result, self.name)
            task.set_user_properties(**{self.name("tracked_status"): run.status})
            logger.flush(wait=True)
        except Exception as exc:  # noqa: BLE001
            self._fail("reporting", exc)
        self.reported = not self.problems

    def _parameters(self, task: Task, run: RunView, created: bool) -> None:
        """The call's simple arguments: ``Args`` of a task tracked made; inside another task, a section of
        their own (the evaluation's name), connected, so that the host's own ``Args`` (its argparse values,
        what an agent re-runs it with) stay as they are."""
        found = ids(run.call.clearml_model, run.call.clearml_dataset)
        params = {**found, **run.call.params}  # an argument of the same name is the user's: it wins
        types = {**dict.fromkeys(found, "str"), **run.call.param_types}
        if created:
            # Typed as ``Task.connect`` records them (int, float, bool, str): the values are text (redacted,
            # shortened), so the types go beside them.
            task.update_parameters(
                {f"Args/{self.name(k)}": v for k, v in params.items()},
                **{"__parameters_types": {f"Args/{self.name(k)}": types.get(k, "str") for k in params}},
            )
            return
        section = encodable(scrub(self.prefix or run.name)).replace("/", "_")
        if section in _HOST_SECTIONS:
            section += " (tracked)"
        task.connect({k: _typed(v, types.get(k, "str")) for k, v in params.items()}, name=section)

    def _release(self, run: RunView) -> None:
        shared = self.shared
        if shared is not None and leave(shared, self.prefix or run.name) and shared.created:
            self._close(shared, run)

    def progress(self, run: RunView, update: Update) -> None:
        """Stream the new chart points: the chart grows while the run goes (from when the task is there:
        the points gathered while it was being made first)."""
        if self._creation is not None:
            if update.points:
                self._backlog.append(update)
            return
        backlog, self._backlog = self._backlog, []
        for earlier in backlog:
            self._stream(earlier)
        self._stream(update)

    def _stream(self, update: Update) -> None:
        task = self.task
        if task is None or not update.points:
            return
        try:
            offline = self._offline
            logger = task.get_logger() if offline is None else None
            report = scalar_reporter(task, logger) if logger is not None else None
            title = self.progress_title
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

    def _close(self, shared: Shared, run: RunView) -> None:
        task = shared.task
        try:
            with guarded_stdout(quiet=not run.settings.verbose), quick_zip():
                task.close()
            if run.status == "failed":
                task.mark_failed(status_reason=f"{type(run.error).__name__}: {run.error}"[:200], force=True)
            elif run.status == "stopped":
                task.mark_stopped(force=True)
        except Exception as exc:  # noqa: BLE001
            self._fail("closing the task", exc)
        finally:
            restore(shared.offline_before, shared.environ_before)
