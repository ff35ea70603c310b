"""What the ``tracked`` command prints: a run shown, runs compared, two runs paired."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..store.compare import format_cell, format_p, labels, with_status

if TYPE_CHECKING:
    import pandas as pd

    from ..store.pairing import Pairing
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
    details = journal.first_details(shown)  # a few lines of the details file, however big
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
    from ..store.comparing import compare_table

    table = compare_table(frame)
    best, tied = table.attrs["best"], table.attrs["tied"]
    if fmt == "csv":  # each metric's 95% interval in columns of its own
        wide = table.copy()
        for column in wide.columns:  # counts as integers (10, not 10.0); missing cells stay empty
            values = wide[column]
            if values.dtype.kind == "f" and values.dropna().map(float.is_integer).all() and values.notna().any():
                wide[column] = values.astype("Int64")
        return str(wide.to_csv())
    if fmt == "json":
        runs = [{"run": run, **{k: _plain(v) for k, v in row.items() if v == v}} for run, row in table.iterrows()]
        return json.dumps({"runs": runs, "best": best, "tied": tied}, indent=2) + "\n"
    intervals: dict[str, dict[str, tuple[float, float]]] = frame.attrs.get("ci", {})
    status: dict[str, str] = frame.attrs.get("status", {})

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

    cells = [
        [with_status(str(run), status.get(str(run), "unknown")), *(cell(str(run), str(m), v) for m, v in row.items())]
        for run, row in frame.iterrows()
    ]
    header = ["run", *map(str, frame.columns)]
    if fmt == "markdown":  # names are text: no HTML, no table breaking out of its cell
        return markdown(header, cells)
    lines = columns(header, cells)
    legend = (
        "± half-width of the 95% confidence interval\n"
        "* best: better than the runner-up at the 95% level (Fisher's exact test for 0/1 metrics, Welch's t\n"
        "  otherwise; exactly, for values without error bars; completed runs only)\n"
        "= tied for best: the leaders cannot be told apart at the 95% level, or cannot be compared\n"
        "  (one example, one cluster, no spread)\n"
    )
    return "\n".join(lines) + "\n" + legend


def render_paired(sessions: Sequence[Session], pairing: Pairing, fmt: str) -> str:
    """The paired comparison, one row per metric: B − A, its error bars, p-value and detectable effect."""
    from ..store.comparing import paired_table

    first, second = labels(sessions)
    table = paired_table(pairing, first, second)
    if fmt == "json":
        rows = [{k: _plain(v) if v == v else None for k, v in row.items()} for row in table.to_dict("records")]
        return json.dumps({"a": first, "b": second, "notes": pairing.notes, "paired": rows}, indent=2) + "\n"
    if fmt == "csv":
        return str(table.to_csv(index=False))
    header = ["metric", "B − A", "stderr", "95% CI", "p-value", "test", "n", "right→wrong", "wrong→right"]
    header.append("detectable (80%)")
    cells = [
        [
            r.metric, format_cell(r.diff), format_cell(r.stderr),
            f"[{format_cell(r.ci_low)}, {format_cell(r.ci_high)}]" if r.ci_low == r.ci_low else "",
            format_p(r.p_value), r.test, str(r.n),
            "" if r.right_to_wrong is None else str(r.right_to_wrong),
            "" if r.wrong_to_right is None else str(r.wrong_to_right), format_cell(r.mde) if r.mde == r.mde else "",
        ]
        for r in pairing.rows
    ]  # fmt: skip
    said = [*pairing.notes, *(f"{r.metric}: {r.note}" for r in pairing.rows if r.note)]
    if fmt == "markdown":
        return markdown(header, cells) + "".join(f"\n- {line}" for line in said) + ("\n" if said else "")
    names = [f"A = {with_status(first, sessions[0].status)}", f"B = {with_status(second, sessions[1].status)}"]
    legend = (
        "paired over the examples both runs scored: t-test (clustered: CR1 on G − 1 degrees of freedom), exact\n"
        "McNemar for 0/1 metrics; detectable: the smallest true difference this test would find with 80%\n"
        "power at the 5% level (Miller, arXiv 2411.00640)\n"
    )
    return "\n".join([*names, *columns(header, cells), *said]) + "\n" + legend


def _plain(value: Any) -> Any:
    """Counts as integers in json (``10``, not ``10.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value.item() if hasattr(value, "item") else value
