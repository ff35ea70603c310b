"""The run's readable summary: final metrics and the first examples with their details."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..common.secrets import scrub
from ..common.text import clip, printable, say

if TYPE_CHECKING:
    from ..common.result import EvalResult
    from ..recording.sink import RunView, Update, Where


def format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4g}"


def error_bars(result: EvalResult) -> dict[str, str]:
    """`` ± half-width [95% CI]  n=…  (interval)`` per yielded metric whose mean is the final value,
    from ``result.stats``."""
    bars: dict[str, str] = {}
    stats = result.stats
    kinds: dict[str, str] = stats.attrs.get("interval", {})
    clustered = ", clustered" if stats.attrs.get("clustered") else ""
    for name, row in stats.iterrows() if not stats.empty else ():
        low, high, mean = float(row["ci_low"]), float(row["ci_high"]), float(row["mean"])
        if str(name) in result and math.isfinite(low) and math.isfinite(high) and result[str(name)] == mean:
            bars[str(name)] = (
                f" ± {format_value((high - low) / 2)}  [{format_value(low)}, {format_value(high)}]  n={int(row['n'])}"
                f"  ({kinds.get(str(name), 't')}{clustered})"
            )
    return bars


def summary_text(run: RunView, result: EvalResult) -> str:
    """The summary shown in the terminal and in ClearML's CONSOLE tab."""
    # A plain function yields nothing: its examples are the dataset's, as num_examples says.
    count = result.get("num_examples", run.count)
    if not isinstance(count, (int, float)) or isinstance(count, bool) or not math.isfinite(count):
        count = run.count
    count = int(count)
    plural = "" if count == 1 else "s"
    lines = [f"tracked: {run.name} {run.status} in {run.duration:.3f} s, {count} example{plural}"]
    width = max((len(name) for name in result), default=0)
    bars = error_bars(result)
    lines += [f"  {name:<{width}}  {format_value(value)}{bars.get(name, '')}" for name, value in result.items()]
    shown = min(run.settings.console_examples, run.count)
    if shown:
        lines.append(f"first {shown} example{'s' if shown != 1 else ''}:")
        details = run.details.first(shown)
        for index in range(shown):
            values = ((name, series.value_at(index)) for name, series in run.series.items())
            scores = [f"{name}={format_value(value)}" for name, value in values if value is not None]
            fields = [f"{key}={clip(text)!s}" for key, text in details.get(index, {}).items()]
            lines.append(f"  #{index}  " + "  ".join(scores + fields))
    if run.skipped:
        for count, first in run.skipped.values():
            lines.append(f"skipped {count} value{'s' if count != 1 else ''}; first: {first}")
    if run.error is not None:
        lines.append(f"error: {type(run.error).__name__}: {clip(str(run.error))}")
    return printable(scrub("\n".join(lines)))


class ConsoleSink:
    """Prints where the run goes when it starts (or once ClearML's task is there), and its summary when it
    ends (stdout)."""

    def __init__(self) -> None:
        self._told = False

    def start(self, run: RunView, where: Where) -> None:
        if not run.settings.verbose:
            return
        if run.earlier is not None:
            matched = f" (same {run.earlier.matched})" if run.earlier.matched else ""
            say(scrub(f"tracked: {run.name}: resuming {run.earlier.folder} after example {run.count:,}{matched}"))
        self.joined(run, where)

    def joined(self, run: RunView, where: Where) -> None:
        """Where the run goes, said once it is known (ClearML makes its task while the evaluation starts)."""
        if self._told or not run.settings.verbose:
            return
        if where.session_dir is not None:
            line = (
                f"tracked: {run.name}: offline session {where.session_dir} (watch it: tracked show {where.session_dir})"
            )
        elif where.task_id is not None:
            line = f"tracked: {run.name}: ClearML task {where.task_id}"
        else:
            return
        self._told = True
        say(scrub(line))

    def progress(self, run: RunView, update: Update) -> None:
        pass

    def finish(self, run: RunView, result: EvalResult, where: Where) -> None:
        pass

    def close(self, run: RunView, result: EvalResult, where: Where) -> None:
        """The summary, once every other sink has said where the run went."""
        if not run.settings.verbose:
            return
        text = summary_text(run, result)
        if where.saved_to is not None:
            text += f"\nsaved locally (ClearML failed): {where.saved_to}"
        if where.session_dir is not None:
            text += f"\noffline session: {where.session_dir}"
            text += f"\nupload it later: tracked upload {where.session_dir}"
        elif where.task_id is not None:
            text += f"\nClearML task: {where.task_id}"
        say(text)
