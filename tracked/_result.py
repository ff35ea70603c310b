"""What a tracked call hands back: its final metrics, and the run's details beside them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ._run import Run


class EvalResult(Mapping[str, Any]):
    """A read-only mapping of final metrics, e.g. ``result["token_recall"]``.

    Also: ``examples`` (every example's scores and details, a DataFrame),
    ``task_id``, ``session_dir`` (the offline session folder, or None),
    ``status`` ("completed", "failed", "stopped") and ``returned`` (what the
    function itself returned).
    """

    __slots__ = ("_examples", "_metrics", "_run", "_session_dir", "_task_id")

    def __init__(self, run: Run, metrics: dict[str, Any]) -> None:
        self._metrics = metrics
        self._run = run
        self._task_id: str | None = None
        self._session_dir: Path | None = None
        self._examples: pd.DataFrame | None = None

    def __getitem__(self, key: str) -> Any:
        return self._metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def __repr__(self) -> str:
        return f"EvalResult({self._metrics!r}, status={self.status!r}, task_id={self._task_id!r})"

    @property
    def metrics(self) -> dict[str, Any]:
        """A plain (mutable) copy of the final metrics."""
        return dict(self._metrics)

    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def session_dir(self) -> Path | None:
        return self._session_dir

    @property
    def status(self) -> str:
        return self._run.status

    @property
    def returned(self) -> Any:
        return self._run.returned

    @property
    def examples(self) -> pd.DataFrame:
        """One row per example: ``index``, one column per metric (NaN where absent), the details."""
        if self._examples is None:
            from ._summary import examples_frame

            self._examples = examples_frame(self._run)
        return self._examples
