"""The local sink: when ClearML could not take the run, the run is saved here instead.

Folder: ``$CLEARML_CACHE_DIR/tracked-runs/<time>-<name>/`` (ClearML's
default cache ``~/.clearml/cache`` when the variable is unset), holding
``metrics.json`` (final metrics, status, error), ``summary.txt`` and
``examples.parquet`` (every example, zstd parquet: ``pandas.read_parquet``; ``examples.csv.gz`` when parquet
cannot hold a column). Never a pickle: loading one runs whatever code it holds.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import TYPE_CHECKING, Any

from ..common.paths import tracked_root
from ..common.secrets import scrub_frame
from ..common.warn import warn

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from ..common.result import EvalResult
    from ..recording.sink import RunView, Update, Where


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


class LocalSink:
    """Saves the run to a local folder when an earlier sink reported a problem."""

    def start(self, run: RunView, where: Where) -> None:
        pass

    def progress(self, run: RunView, update: Update) -> None:
        pass

    def finish(self, run: RunView, result: EvalResult, where: Where) -> None:
        pass

    def close(self, run: RunView, result: EvalResult, where: Where) -> Where | None:
        """Once every sink has finished and ClearML has closed its task, every problem is known."""
        if not where.problems:
            return None
        from ..recording.sink import Where
        from .console import summary_text

        safe = re.sub(r"[^\w.-]+", "_", run.name)[:80] or "run"
        folder = tracked_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{id(run):x}-{safe}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            record = {
                "name": run.name,
                "status": run.status,
                "error": None if run.error is None else f"{type(run.error).__name__}: {run.error}",
                "problems": list(where.problems),
                "metrics": {k: _jsonable(v) for k, v in result.items()},
            }
            (folder / "metrics.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
            (folder / "summary.txt").write_text(summary_text(run, result) + "\n", "utf-8", "backslashreplace")
            _save_examples(scrub_frame(result.examples), folder)
        except Exception as exc:  # noqa: BLE001 - the last resort must not raise either
            warn(
                f"{run.name}: {'; '.join(where.problems)}; saving the run locally to {folder} failed too "
                f"({type(exc).__name__}: {exc}); the result is still returned",
                stacklevel=2,
            )
            return None
        warn(f"{run.name}: {'; '.join(where.problems)}; the evaluation went on and the run is saved in {folder}")
        return Where(saved_to=folder)


def _save_examples(examples: pd.DataFrame, folder: Path) -> None:
    try:
        examples.to_parquet(folder / "examples.parquet", compression="zstd")
    except Exception:  # noqa: BLE001 - a column parquet cannot hold (mixed objects): text, which holds anything
        (folder / "examples.parquet").unlink(missing_ok=True)
        examples.to_csv(folder / "examples.csv.gz")
