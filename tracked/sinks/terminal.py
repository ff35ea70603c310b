"""Progress while the run goes: a tqdm bar on a terminal or in a notebook, plain status lines elsewhere.

The bar shows examples done (``done/total`` when the dataset's length is
known), rate, elapsed time, ETA and the running means of the first metrics.
It is drawn from the live thread, never from the evaluation's own loop.
While it is shown, ``sys.stdout`` passes whole lines through a guard that
lifts the bar, writes the line and puts the bar back, so the user's own
prints are never garbled by it. Where stderr is not a terminal (a CI log,
``nohup``, a scheduler's log file), a plain line every ``status_interval``
seconds instead, so a log shows progress without thousands of carriage
returns. The bar is closed, and stdout given back, when the run ends in any way.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from ..common.secrets import scrub
from ..common.text import say
from .console import format_value

if TYPE_CHECKING:
    from ..common.result import EvalResult
    from ..recording.live import Live
    from ..recording.sink import RunView, Update, Where

#: Metrics shown in the bar's text.
SHOWN_METRICS = 3
#: Seconds a run must last before "auto" shows anything: short runs stay quiet.
AUTO_DELAY_S = 2.0
_FORMAT = "{desc}: {n_fmt}{total_part} examples{percent_part}, {rate_fmt}, elapsed {elapsed}{eta_part}{postfix}"


def in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    try:
        return type(get()).__name__ == "ZMQInteractiveShell" if get is not None else False
    except Exception:  # noqa: BLE001 - any failure means: not a notebook we can draw in
        return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # noqa: BLE001 - a replaced stream may not implement it
        return False


def postfix(means: dict[str, float]) -> str:
    shown = [(k, v) for k, v in means.items() if not math.isnan(v)][:SHOWN_METRICS]
    return "  ".join(f"{k}={format_value(v)}" for k, v in shown)


class TerminalSink:
    """Draws the run's progress (tqdm) or prints status lines; closes either when the run ends."""

    def __init__(self) -> None:
        self.mode = "off"  # "bar", "lines" or "off"
        self.bar: Any = None
        self._guard: _LineGuard | None = None
        self._err_guard: _LineGuard | None = None
        self._delay = 0.0
        self._next_line = 0.0
        self._lock = threading.Lock()

    @property
    def ticking(self) -> bool:
        return self.mode != "off"

    def start(self, run: RunView, where: Where) -> None:
        settings = run.settings
        if not settings.verbose or settings.progress == "off":
            return
        self._delay = AUTO_DELAY_S if settings.progress == "auto" else 0.0
        stream = sys.stderr
        if _isatty(stream) or in_notebook():
            try:
                self._open_bar(run, stream)
                self.mode = "bar"
            except Exception:  # noqa: BLE001 - no bar is better than no evaluation
                self.mode = "off"
        else:
            self.mode = "lines"
            self._next_line = time.monotonic() + max(self._delay, settings.status_interval)
            if settings.progress == "on":
                self._next_line = time.monotonic()

    def _open_bar(self, run: RunView, stream: TextIO) -> None:
        import importlib

        # In a notebook, tqdm.auto draws the widget (where ipywidgets is installed).
        bar_class = importlib.import_module("tqdm.auto" if in_notebook() else "tqdm").tqdm
        self.bar = bar_class(
            total=run.expected,
            initial=run.count,
            desc=scrub(run.name),
            unit="ex",
            file=stream,
            delay=self._delay,
            dynamic_ncols=True,
            leave=False,
            mininterval=0.2,
            smoothing=0.1,
        )
        if not in_notebook():  # the bar and the user's prints share the terminal
            if _isatty(sys.stdout):
                self._guard = _LineGuard(sys.stdout, self.bar)
                sys.stdout = self._guard
            if sys.stderr is stream:  # print(..., file=sys.stderr) too (the bar writes to the stream itself)
                self._err_guard = _LineGuard(stream, self.bar)
                sys.stderr = self._err_guard

    def tick(self, run: RunView, live: Live) -> None:
        with self._lock:
            if self.mode == "bar" and self.bar is not None:
                text = postfix(live.means())
                if text:
                    self.bar.set_postfix_str(scrub(text), refresh=False)
                self.bar.update(run.count - self.bar.n)
            elif self.mode == "lines" and time.monotonic() >= self._next_line:
                self._next_line = time.monotonic() + run.settings.status_interval
                self._line(run, live)

    def _line(self, run: RunView, live: Live) -> None:
        from tqdm import tqdm

        total = run.expected
        elapsed = run.duration
        done = run.count
        rate = (done - (run.earlier.count if run.earlier else 0)) / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {tqdm.format_interval((total - done) / rate)}" if total and rate > 0 and done <= total else ""
        text = postfix(live.means())
        line = (
            f"tracked: {run.name}: {done:,}{f'/{total:,}' if total else ''} examples"
            f"{f' ({100 * done / total:.0f}%)' if total else ''}, {rate:,.1f} ex/s, "
            f"elapsed {tqdm.format_interval(elapsed)}{eta}{f', {text}' if text else ''}"
        )
        say(scrub(line), sys.stderr)

    def progress(self, run: RunView, update: Update) -> None:
        if update.final:
            self._close_bar()

    def finish(self, run: RunView, result: EvalResult, where: Where) -> None:
        self._close_bar()

    def close(self, run: RunView, result: EvalResult, where: Where) -> None:
        pass

    def _close_bar(self) -> None:
        """Take the bar down and give stdout back (only if it is still ours: the user may have replaced it)."""
        with self._lock:
            guard, self._guard = self._guard, None
            err_guard, self._err_guard = self._err_guard, None
            bar, self.bar = self.bar, None
            self.mode = "off"
        if guard is not None:
            if sys.stdout is guard:
                sys.stdout = guard.stream
            guard.release()
        if err_guard is not None:
            if sys.stderr is err_guard:
                sys.stderr = err_guard.stream
            err_guard.release()
        if bar is not None:
            with contextlib.suppress(Exception):  # a closed terminal must not break the end of the run
                bar.close()


class _LineGuard:
    """``sys.stdout`` while the bar is shown: whole lines are written with the bar lifted, then redrawn.

    Text without a newline waits for the rest of its line (or the end of
    the run): writing half a line would leave the bar drawn over it.
    """

    def __init__(self, stream: TextIO, bar: Any) -> None:
        self.stream = stream
        self._bar = bar
        self._partial = ""

    def write(self, text: str) -> int:
        bar = self._bar
        if bar is None:
            return self.stream.write(text)
        if time.time() < bar.start_t + bar.delay:  # the bar is not drawn yet: nothing to lift
            return self.stream.write(text)
        head, newline, tail = (self._partial + text).rpartition("\n")
        self._partial = tail
        if newline:
            with bar.get_lock():
                bar.clear(nolock=True)
                self.stream.write(head + newline)
                self.stream.flush()
                bar.refresh(nolock=True)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def release(self) -> None:
        """The bar is going: write what waits, and pass everything through from now on."""
        self._bar = None
        if self._partial:
            self.stream.write(self._partial)
            self._partial = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
