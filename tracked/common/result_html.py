"""An ``EvalResult`` as a small HTML table, for Jupyter (``_repr_html_``): each metric with its ± and
95% interval, the number of examples, the status, and where the run is."""

from __future__ import annotations

import html
import math
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def result_html(result: Any) -> str:  # an EvalResult (typed loosely: result.py imports this module)
    """The table; every text in it is escaped (names and paths come from the user and the disk)."""
    stats = result.stats
    rows = []
    for name, value in result.items():
        spread = interval = n = ""
        if name in stats.index:
            row = stats.loc[name]
            low, high = float(row["ci_low"]), float(row["ci_high"])
            if math.isfinite(low) and math.isfinite(high):
                spread = f"± {_cell((high - low) / 2)}"
                interval = f"[{_cell(low)}, {_cell(high)}]"
            n = _cell(int(row["n"]))
        cells = (html.escape(str(name)), _cell(value), spread, interval, n)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    where = result.session_dir or result.task_id or result.saved_to
    examples = result.get("num_examples")
    facts = [f"status: <b>{html.escape(result.status)}</b>"]
    if examples is not None:
        facts.append(f"{_cell(examples)} examples")
    if where is not None:
        label = "ClearML task" if where == result.task_id and result.session_dir is None else "run"
        facts.append(f"{label}: <code>{html.escape(str(where))}</code>")
    header = "".join(f"<th>{h}</th>" for h in ("metric", "value", "±", "95% interval", "n"))
    return (
        '<div class="tracked-result">'
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p>{' · '.join(facts)}</p></div>"
    )
