"""``tracked report``: one self-contained HTML file laid out like ClearML's tabs.

SCALARS (single values; a Training Progress chart per metric with its
running mean, runs overlaid), PLOTS (the Final Metrics tables), CONSOLE
(each run's console text). With several runs, the compare table comes
first. Charts are plotly, with plotly.js inlined once: the file opens
offline, with no CDN and no server.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.errors import SessionError
from ..common.names import RUNNING_MEAN
from ..store.session import Session

_RUNNING = RUNNING_MEAN.format(metric="")
_CSS = """
body { font-family: Heebo, verdana, arial, sans-serif; margin: 0; color: #333; background: #f7f8fc; }
header { background: #1a1e2c; color: #fff; padding: 12px 24px; font-size: 18px; }
nav { background: #fff; border-bottom: 1px solid #d4d6e0; padding: 0 24px; }
nav button { background: none; border: none; padding: 12px 16px; font-size: 14px; cursor: pointer; }
nav button.active { border-bottom: 3px solid #14aa8c; font-weight: bold; }
section { display: none; padding: 16px 24px; }
section.active { display: block; }
table { border-collapse: collapse; margin: 8px 0 20px; background: #fff; }
th, td { border: 1px solid #d4d6e0; padding: 6px 12px; text-align: left; }
th { background: #eef0f6; }
td.best { font-weight: bold; background: #e3f6f1; }
pre { background: #fff; border: 1px solid #d4d6e0; padding: 12px; overflow-x: auto; }
.chart { background: #fff; margin-bottom: 16px; border: 1px solid #d4d6e0; }
"""
_TABS_JS = """
document.querySelectorAll('nav button').forEach(function (button) {
  button.addEventListener('click', function () {
    document.querySelectorAll('nav button, section').forEach(function (el) { el.classList.remove('active'); });
    button.classList.add('active');
    document.getElementById(button.dataset.tab).classList.add('active');
    window.dispatchEvent(new Event('resize'));
  });
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], best: set[tuple[int, int]] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="best">{_e(_cell(c))}</td>' if best and (r, i) in best else f"<td>{_e(_cell(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for r, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    from ..store.compare import format_cell

    return "" if isinstance(value, float) and value != value else format_cell(value)  # NaN: no such metric


#: plotly's default qualitative colours (plotly.colors.qualitative.Plotly).
PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52")


def _charts(sessions: Sequence[Session], names: Sequence[str]) -> list[str]:
    """One chart per (title, metric): each run's points and its running mean, overlaid.

    Several runs of different lengths on one example axis are unreadable (a 1,000-example run
    squeezes a 10-example one against the left edge, and its raw points hide the rest). Comparing,
    the chart shows the running means against the share of each run's examples (0-100%), with a
    button to switch to the example index; raw points are one legend click away.
    """
    import plotly.graph_objects as go

    metrics: dict[tuple[str, str], None] = {}
    for session in sessions:
        for title, series in session.scalars.items():
            for name in series:
                if not name.endswith(_RUNNING):
                    metrics[(title, name)] = None
    comparing = len(sessions) > 1
    divs = []
    for title, metric in metrics:
        figure = go.Figure()
        by_index: list[list[float]] = []
        by_share: list[list[float]] = []
        for number, (session, run) in enumerate(zip(sessions, names, strict=True)):
            series = session.scalars.get(title, {})
            length = _length(session, series)
            color = PALETTE[number % len(PALETTE)]  # a run's points and running mean in one colour
            for name, dash in ((metric, None), (metric + _RUNNING, "dash")):
                points = series.get(name)
                if points:
                    # plotly renders HTML in names: a name is text, escaped
                    label = html.escape(name if not comparing else f"{run}: {name}")
                    xs, ys = [float(i) for i, _ in points], [v for _, v in points]
                    shares = [100.0 * (x + 1) / length for x in xs]
                    by_index.append(xs)
                    by_share.append(shares)
                    raw_hidden = comparing and dash is None and (metric + _RUNNING) in series
                    figure.add_trace(
                        go.Scatter(
                            x=shares if comparing else xs, y=ys, mode="lines", name=label,
                            line={"dash": dash, "color": color}, visible="legendonly" if raw_hidden else True,
                        )
                    )  # fmt: skip
        layout: dict[str, Any] = {
            "title": html.escape(f"{title} / {metric}"),
            "xaxis_title": "% of the run's examples" if comparing else "example",
            "height": 360,
            "margin": {"t": 48, "b": 40, "l": 48, "r": 16},
        }
        if comparing:
            layout["updatemenus"] = [
                {
                    "type": "buttons", "direction": "left", "x": 1, "y": 1.18, "xanchor": "right",
                    "buttons": [
                        {"label": "% of run", "method": "update",
                         "args": [{"x": by_share}, {"xaxis.title.text": "% of the run's examples"}]},
                        {"label": "example", "method": "update",
                         "args": [{"x": by_index}, {"xaxis.title.text": "example"}]},
                    ],
                }
            ]  # fmt: skip
        figure.update_layout(**layout)
        divs.append(f'<div class="chart">{figure.to_html(full_html=False, include_plotlyjs=False)}</div>')
    return divs


def _length(session: Session, series: dict[str, list[tuple[int, float]]]) -> float:
    """The run's number of examples: its count, else one past its last point."""
    count = session.single_values.get("num_examples")
    if count is not None and count == count and count >= 1:
        return float(count)
    last = max((points[-1][0] for points in series.values() if points), default=0)
    return float(last + 1)


def _with_error_bar(value: Any, interval: tuple[float, float] | None) -> Any:
    from ..store.compare import format_cell

    if interval is None or value != value:
        return value
    return f"{format_cell(value)} ± {format_cell((interval[1] - interval[0]) / 2)}"


def _paired_table(sessions: Sequence[Session]) -> str:
    """B − A over the examples both runs scored, when they can be paired (else a line saying why)."""
    from ..store.compare import format_cell, format_p
    from ..store.pairing import paired_rows

    try:
        pairing = paired_rows(sessions[0], sessions[1])
    except SessionError as exc:
        return f"<h2>Paired comparison</h2><p>{_e(str(exc))}</p>"
    header = ["metric", "B − A", "stderr", "95% CI", "p-value", "test", "n", "right→wrong", "wrong→right"]
    header.append("detectable (80%)")

    def number(value: float) -> str:
        return "" if value != value else format_cell(value)

    rows = [
        [
            r.metric, number(r.diff), number(r.stderr),
            f"[{number(r.ci_low)}, {number(r.ci_high)}]" if r.ci_low == r.ci_low else "", format_p(r.p_value),
            r.test, str(r.n), "" if r.right_to_wrong is None else str(r.right_to_wrong),
            "" if r.wrong_to_right is None else str(r.wrong_to_right), number(r.mde),
        ]
        for r in pairing.rows
    ]  # fmt: skip
    said = [*pairing.notes, *(f"{r.metric}: {r.note}" for r in pairing.rows if r.note)]
    notes = "".join(f"<li>{_e(line)}</li>" for line in said)
    return (
        "<h2>Paired comparison (second − first run)</h2>" + _table(header, rows)
        + (f"<ul>{notes}</ul>" if notes else "")
    )  # fmt: skip


def build_report(sessions: Sequence[Session], names: Sequence[str]) -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise SessionError("tracked report draws its charts with plotly: pip install 'tracked[report]'") from None
    from ..store.compare import best_runs, compare_frame

    scalars = []
    if len(sessions) > 1:
        frame = compare_frame(sessions)
        best, _tied = best_runs(frame)
        columns = list(frame.columns)
        marks = {
            (r, columns.index(m) + 1) for m, runs in best.items() for r, name in enumerate(frame.index) if name in runs
        }
        intervals = frame.attrs.get("ci", {})
        rows = [
            [run, *(_with_error_bar(v, intervals.get(run, {}).get(m)) for m, v in zip(columns, row, strict=True))]
            for run, row in zip(frame.index, frame.itertuples(index=False), strict=True)
        ]
        scalars.append(
            "<h2>Compare</h2>" + _table(["run", *columns], rows, marks)
            + "<p>± half-width of the 95% confidence interval; bold: better than the runner-up at the 95% level</p>"
        )  # fmt: skip
        if len(sessions) == 2:
            scalars.append(_paired_table(sessions))
    for session, run in zip(sessions, names, strict=True):
        status = f"{session.status}, {session.id}"
        scalars.append(f"<h3>Single values: {_e(run)} <small>({_e(status)})</small></h3>")
        if session.error:
            scalars.append(f"<p>error: <code>{_e(session.error)}</code></p>")
        args = session.hyperparameters.get("Args", {})
        if args:
            scalars.append("<h4>Arguments (Args)</h4>" + _table(["Argument", "Value"], list(args.items())))
        scalars.append(_table(["Metric", "Value"], list(session.single_values.items())))
    scalars.append("<h2>Training Progress</h2>")
    scalars += _charts(sessions, names)
    plots = [
        f"<h3>{_e(title)}: {_e(run)}</h3>" + _table(table.header, table.rows)
        for session, run in zip(sessions, names, strict=True)
        for title, table in session.tables.items()
    ]
    console = [
        f"<h3>{_e(run)}</h3><pre>{_e(session.console)}</pre>" for session, run in zip(sessions, names, strict=True)
    ]
    tabs = {"scalars": ("SCALARS", scalars), "plots": ("PLOTS", plots), "console": ("CONSOLE", console)}
    nav = "".join(
        f'<button data-tab="{key}"{" class=active" if key == "scalars" else ""}>{label}</button>'
        for key, (label, _) in tabs.items()
    )
    sections = "".join(
        f'<section id="{key}"{" class=active" if key == "scalars" else ""}>{"".join(parts)}</section>'
        for key, (_, parts) in tabs.items()
    )
    title = "tracked: " + ", ".join(names)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head>"
        f"<body><header>{_e(title)}</header><nav>{nav}</nav>{sections}<script>{_TABS_JS}</script></body></html>"
    )


def write_report(sessions: Sequence[Session], names: Sequence[str], output: Path) -> None:
    output.write_text(build_report(sessions, names), "utf-8", "backslashreplace")  # a lone surrogate: escaped
