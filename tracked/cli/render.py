"""What the ``tracked`` command prints: a run shown, runs compared, two runs paired."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..store.compare import best_runs, format_cell, labels

if TYPE_CHECKING:
    import pandas as pd

    from ..store.session import Session

_SPARKS = "▁▂▃▄▅▆▇█"


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A header and rows as aligned text lines, each column as wide as its widest cell."""
    widths = [max(len(str(h)), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))]
    return lines + ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)) for row in rows]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table; cells are text: no HTML, no table breaking out of its cell."""
    import html

    def md(text: str) -> str:
        return html.escape(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(md, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(md, row)) + " |" for row in rows]) + "\n"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """A one-line text chart of ``values``: each character the mean of an equal share of them."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [
            sum(chunk) / len(chunk)
            for chunk in (values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)] for i in range(width))
        ]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_SPARKS[min(len(_SPARKS) - 1, int((v - low) / span * len(_SPARKS)))] for v in values)


def show(session: Session, out: TextIO) -> None:
    singles = session.single_values
    duration = singles.get("duration_seconds")
    print(f"run       {session.name}  ({session.id})", file=out)
    print(f"project   {session.project}", file=out)
    status = session.status
    if status in ("running", "interrupted") and session.num_examples is not None:
        what = "so far" if status == "running" else "recorded before its process died"
        status += f"  ({session.num_examples:,} examples {what}; the values below are their means)"
    if session.resumed_by is not None:
        status += f"  resumed by {session.resumed_by}"
    print(f"status    {status}", file=out)
    print(f"duration  {'-' if duration is None else f'{duration:.3f} s'}", file=out)
    if session.error:
        print(f"error     {session.error}", file=out)
    args = session.hyperparameters.get("Args", {})
    if args:
        width = max(map(len, args))
        print("\narguments (Args)", file=out)
        for arg, text in args.items():
            print(f"  {arg:<{width}}  {text}", file=out)
    if singles:
        width = max(map(len, singles))
        print("\nsingle values", file=out)
        for name, value in singles.items():
            print(f"  {name:<{width}}  {format_cell(value)}", file=out)
    for title, table in session.tables.items():
        print(f"\n{title}", file=out)
        for line in columns(table.header, [[format_cell(c) for c in row] for row in table.rows]):
            print(f"  {line}", file=out)
    for title, series in session.scalars.items():
        print(f"\n{title}", file=out)
        width = max(map(len, series))
        for name, points in series.items():
            values = [v for _, v in points if math.isfinite(v)]  # a hostile session may hold inf/nan
            if not values:
                continue
            first, last = points[0][0], points[-1][0]
            print(
                f"  {name:<{width}}  {sparkline(values)}  {len(points)} points, examples {first}-{last}, "
                f"{min(values):.4g}..{max(values):.4g}",
                file=out,
            )
    examples = _console_examples(session.console) or _journal_examples(session)
    if examples:
        print("\nfirst examples", file=out)
        for line in examples:
            print(f"  {line}", file=out)


def _journal_examples(session: Session, shown: int = 3) -> list[str]:
    """The first examples a run recorded in its journal (a run still going, or one that died)."""
    import numpy as np

    from ..common.text import clip

    journal = session.journal
    if journal is None or not journal.count:
        return []
    details = dict(journal.details[:shown])
    lines = []
    for index in range(min(shown, journal.count)):
        scores = []
        for name, (indices, values) in journal.series.items():
            position = int(np.searchsorted(indices, index))
            if position < len(indices) and indices[position] == index:
                scores.append(f"{name}={format_cell(float(values[position]))}")
        fields = [f"{key}={clip(text)}" for key, text in details.get(index, {}).items()]
        lines.append(f"#{index}  " + "  ".join(scores + fields))
    return lines


def _console_examples(console: str) -> list[str]:
    """The example lines of tracked's console summary (``#0  score=...  prediction=...``)."""
    return [line.strip() for line in console.splitlines() if line.startswith("  #")]


def render_compare(frame: pd.DataFrame, fmt: str) -> str:
    best, tied = best_runs(frame)
    intervals: dict[str, dict[str, tuple[float, float]]] = frame.attrs.get("ci", {})
    if fmt in ("csv", "json"):  # each metric's 95% interval in columns of its own
        wide = frame.copy()
        for position, metric in reversed(list(enumerate(frame.columns))):
            for end, name in ((1, "ci_high"), (0, "ci_low")):
                values = [intervals.get(str(run), {}).get(str(metric), (math.nan, math.nan))[end] for run in wide.index]
                if any(v == v for v in values):
                    wide.insert(position + 1, f"{metric}_{name}", values)
        if fmt == "csv":
            for column in wide.columns:  # counts as integers (10, not 10.0); missing cells stay empty
                values = wide[column]
                if values.dtype.kind == "f" and values.dropna().map(float.is_integer).all() and values.notna().any():
                    wide[column] = values.astype("Int64")
            return str(wide.to_csv())
        runs = [{"run": run, **{k: _plain(v) for k, v in row.items() if v == v}} for run, row in wide.iterrows()]
        return json.dumps({"runs": runs, "best": best, "tied": tied}, indent=2) + "\n"

    def cell(run: str, metric: str, value: Any) -> str:
        if value != value:
            return ""
        text = format_cell(value)
        low, high = intervals.get(run, {}).get(metric, (math.nan, math.nan))
        if low == low:
            text += f" ± {format_cell((high - low) / 2)}"
        if run in best.get(metric, ()):
            return f"**{text}**" if fmt == "markdown" else f"{text} *"
        if run in tied.get(metric, ()):
            return f"_{text}_" if fmt == "markdown" else f"{text} ="
        return text

    cells = [[str(run), *(cell(str(run), str(m), v) for m, v in row.items())] for run, row in frame.iterrows()]
    header = ["run", *map(str, frame.columns)]
    if fmt == "markdown":  # names are text: no HTML, no table breaking out of its cell
        return markdown(header, cells)
    lines = columns(header, cells)
    legend = (
        "± half-width of the 95% confidence interval\n"
        "* best: better than the runner-up at the 95% level (exactly, for values without a standard error;\n"
        "  completed runs only)\n"
        "= tied for best: the leaders cannot be told apart at the 95% level\n"
    )
    return "\n".join(lines) + "\n" + legend


def render_paired(sessions: Sequence[Session], rows: list[dict[str, Any]], fmt: str) -> str:
    """The paired comparison, one row per metric: B − A, its error bars, p-value and detectable effect."""
    first, second = labels(sessions)
    if fmt == "json":
        clean = [{k: _plain(v) if v == v else None for k, v in row.items()} for row in rows]
        return json.dumps({"a": first, "b": second, "paired": clean}, indent=2) + "\n"
    if fmt == "csv":
        import pandas as pd

        return str(pd.DataFrame(rows).to_csv(index=False))
    header = ["metric", "B − A", "stderr", "95% CI", "p-value", "n", "right→wrong", "wrong→right", "detectable (80%)"]
    cells = [
        [
            r["metric"], format_cell(r["diff"]), format_cell(r["stderr"]),
            f"[{format_cell(r['ci_low'])}, {format_cell(r['ci_high'])}]", format_cell(r["p_value"]), str(r["n"]),
            "" if r["right_to_wrong"] is None else str(r["right_to_wrong"]),
            "" if r["wrong_to_right"] is None else str(r["wrong_to_right"]), format_cell(r["mde"]),
        ]
        for r in rows
    ]  # fmt: skip
    if fmt == "markdown":
        return markdown(header, cells)
    lines = [f"A = {first}", f"B = {second}", *columns(header, cells)]
    legend = (
        "paired t-test over the examples both runs scored; detectable: the smallest true difference this\n"
        "many examples would find with 80% power at the 5% level (Miller, arXiv 2411.00640)\n"
    )
    return "\n".join(lines) + "\n" + legend


def _plain(value: Any) -> Any:
    """Counts as integers in json (``10``, not ``10.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value.item() if hasattr(value, "item") else value
