"""What a tracked call hands back: its final metrics, and the run's details beside them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd


class EvalResult(Mapping[str, Any]):
    """A read-only mapping of final metrics, e.g. ``result["token_recall"]``.

    Also: ``examples`` (every example's scores and details, a DataFrame),
    ``task_id``, ``session_dir`` (the offline session folder, or None),
    ``saved_to`` (a local folder, when ClearML failed), ``status``
    ("completed", "failed", "stopped") and ``returned`` (what the function
    itself returned). It pickles (with its examples), so a result can come
    back from a process pool.
    """

    __slots__ = (
        "_examples", "_group_stats", "_make_examples", "_metrics", "_prefix", "_problems", "_returned",
        "_saved_to", "_session_dir", "_shard", "_stats", "_status", "_task_id",
    )  # fmt: skip

    def __init__(
        self,
        metrics: dict[str, Any],
        status: str = "completed",
        returned: Any = None,
        examples: Callable[[], pd.DataFrame] | None = None,
    ) -> None:
        self._metrics = metrics
        self._status = status
        self._returned = returned
        #: Builds ``examples`` when first asked for (a million rows are not made for nothing).
        self._make_examples = examples
        self._task_id: str | None = None
        self._session_dir: Path | None = None
        self._saved_to: Path | None = None
        self._prefix = ""
        self._examples: pd.DataFrame | None = None
        self._stats: pd.DataFrame | None = None
        self._group_stats: pd.DataFrame | None = None
        #: (index, count, evaluation, task name, project) of a sharded run (``shard=``), for ``tracked.merge``.
        self._shard: tuple[int, int, str, str, str] | None = None
        #: What went wrong in the sinks (ClearML); non-empty: the run is also saved locally.
        self._problems: list[str] = []

    def __getitem__(self, key: str) -> Any:
        return self._metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def __repr__(self) -> str:
        return f"EvalResult({self._metrics!r}, status={self._status!r}, task_id={self._task_id!r})"

    def _repr_html_(self) -> str:
        """Jupyter shows a result as a small table: metrics with ± and interval, examples, status, where."""
        from .result_html import result_html

        return result_html(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # The run (with its ClearML task) stays behind; what it produced travels.
        state = (
            self._task_id, self._session_dir, self._saved_to, self.examples, list(self._problems), self._prefix,
            self._stats, self._group_stats, self._shard,
        )  # fmt: skip
        return (_restore, (self._metrics, self._status, self._returned, state))

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
    def prefix(self) -> str:
        """The prefix of this run's names in a task it shared with overlapping runs ("" for the first)."""
        return self._prefix

    @property
    def saved_to(self) -> Path | None:
        """The local folder the run was saved in because ClearML failed, else None."""
        return self._saved_to

    @property
    def status(self) -> str:
        return self._status

    @property
    def returned(self) -> Any:
        return self._returned

    @property
    def stats(self) -> pd.DataFrame:
        """Per yielded metric (index): ``mean, stderr, ci_low, ci_high, std, n, min, max``.

        95% intervals: Wilson score for 0/1 metrics, mean ± 1.96·stderr otherwise; clustered with
        ``cluster_by`` (``stats.attrs`` says which). NaN and infinite values are left out, as from the mean.
        """
        return self._stats if self._stats is not None else _empty()

    @property
    def group_stats(self) -> pd.DataFrame:
        """With ``group_by``: ``group, metric, mean, stderr, ci_low, ci_high, n`` per group and metric."""
        return self._group_stats if self._group_stats is not None else _empty()

    @property
    def examples(self) -> pd.DataFrame:
        """One row per example (index = example index): one column per metric (NaN where absent), the details."""
        if self._examples is None:
            if self._make_examples is None:
                import pandas as pd

                empty: pd.DataFrame = pd.DataFrame()
                return empty
            self._examples, self._make_examples = self._make_examples(), None
        return self._examples


def _empty() -> pd.DataFrame:
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame()
    return frame


def _restore(metrics: dict[str, Any], status: str, returned: Any, state: tuple[Any, ...]) -> EvalResult:
    result = EvalResult(metrics, status, returned)
    (
        result._task_id, result._session_dir, result._saved_to, result._examples, result._problems, result._prefix,
        result._stats, result._group_stats, result._shard,
    ) = state  # fmt: skip
    return result
