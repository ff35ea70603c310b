"""The ``tracked`` command: look at offline sessions without a ClearML server.

    tracked show RUN                 status, metrics, progress charts, first examples
    tracked compare RUN... [--format table|markdown|csv|json] [--sort METRIC]
    tracked compare A B --paired [--id-field FIELD] [--format ...]
    tracked report RUN... -o report.html
    tracked upload RUN...            send sessions to the configured ClearML server

RUN is an offline session folder or its zip (globs are expanded). A RUN that
cannot be read is one line on stderr; the others are still shown, and the
exit code is 2.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from .compare import best_runs, compare_frame, format_cell, labels, paired_rows
from .session import Session, SessionError, read_session

if TYPE_CHECKING:
    import pandas as pd

EXIT_BAD_INPUT = 2
_SPARKS = "▁▂▃▄▅▆▇█"


class _Printable:
    """A text stream that escapes control characters (see ``sinks.console.printable``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from .sinks.console import printable

        return self._stream.write(printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Problems:
    """Collects one-line problems for stderr; any problem makes the exit code 2."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        print(f"tracked: {message}", file=self.stream)


def load_runs(specs: Sequence[str], problems: Problems, events: bool = True) -> list[Session]:
    """Sessions for each RUN argument (globs expanded); unreadable ones become problems."""
    sessions: list[Session] = []
    # Globs in the order the runs were written, oldest first.
    expanded = [sorted(glob.glob(spec), key=os.path.getmtime) if glob.has_magic(spec) else [spec] for spec in specs]
    # A session's folder and its zip are one run, however they were named.
    folders = {os.path.normpath(p) for paths in expanded for p in paths if os.path.isdir(p)}
    for spec, paths in zip(specs, expanded, strict=True):
        if not paths:
            problems.add(f"{spec}: no such file or folder")
        for path in paths:
            if path.endswith(".zip") and os.path.normpath(path[: -len(".zip")]) in folders:
                continue
            try:
                local = Path(path).exists() or _looks_like_a_path(path) or not _server()
                found = [read_session(path, events)] if local else _from_server(path)
            except SessionError as exc:
                problems.add(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a hostile or broken session is one line, not a traceback
                problems.add(f"{path}: not a readable session ({type(exc).__name__}: {str(exc)[:200]})")
                continue
            for session in found:
                for problem in session.problems:
                    problems.add(f"{path}: {problem}; showing what could be read")
                if session.status == "unknown":
                    problems.add(f"{path}: no final status recorded (the run may have crashed); showing what it wrote")
                sessions.append(session)
    return sessions


def _server() -> bool:
    from .sinks._clearml_setup import server_configured

    return server_configured()


def _looks_like_a_path(spec: str) -> bool:
    """A RUN written as a path is never looked up on a server (a typo must not wait for one)."""
    return os.sep in spec or spec.startswith((".", "~")) or spec.endswith(".zip")


#: Seconds the command waits for a configured server to answer before saying it does not.
SERVER_TIMEOUT_S = 5.0


def _from_server(spec: str) -> list[Session]:
    """RUN that is no path, with a server configured: a task id, else every task of a project."""
    from .session import project_task_ids, read_task
    from .sinks._clearml_setup import server_unreachable

    problem = server_unreachable(SERVER_TIMEOUT_S)
    if problem:  # ClearML itself would retry for hours
        raise SessionError(f"{spec}: no such file or folder, and the configured ClearML server {problem}")
    try:
        return [read_task(spec)]
    except SessionError:
        ids = project_task_ids(spec)
    if not ids:
        raise SessionError(f"{spec}: no such file or folder, ClearML task or ClearML project")
    return [read_task(task_id) for task_id in ids]


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
        widths = [max(len(str(h)), *(len(format_cell(r[i])) for r in table.rows)) for i, h in enumerate(table.header)]
        print("  " + "  ".join(f"{h:<{w}}" for h, w in zip(table.header, widths, strict=True)), file=out)
        for row in table.rows:
            print("  " + "  ".join(f"{format_cell(c):<{w}}" for c, w in zip(row, widths, strict=True)), file=out)
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

    from .sinks.console import clip

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
        import html

        def md(text: str) -> str:
            return html.escape(text).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(map(md, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(map(md, row)) + " |" for row in cells]) + "\n"
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)) for row in cells]
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
        import html

        def md(text: str) -> str:
            return html.escape(text).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(map(md, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(map(md, row)) + " |" for row in cells]) + "\n"
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    lines = [f"A = {first}", f"B = {second}", "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)) for row in cells]
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


#: A session's record of where it went: in its folder, or beside its zip (see ``_record_paths``).
def merged_to(
    sessions: Sequence[Session], output: Path | None, id_field: str | None, problems: Problems, out: TextIO
) -> None:
    """``tracked merge``: the shards as one run (a new offline session, or a task with a server)."""
    import shutil

    from ._merge import MergeError, merge

    if output is not None and not output.parent.is_dir():
        problems.add(f"not merged: {output.parent} is not a folder (-o)")
        return
    if problems.count:  # a shard that cannot be read: merging the rest would be a silently partial run
        problems.add("not merged: every shard must be readable")
        return
    try:
        result = merge(sessions, id_field=id_field, verbose=False)
    except MergeError as exc:
        problems.add(f"not merged: {exc}")
        return
    where = result.session_dir or result.task_id or result.saved_to
    print(f"merged {len(sessions)} shards, {result['num_examples']:,} examples -> {where}", file=out)
    if output is not None and result.session_dir is not None:
        shutil.copyfile(f"{result.session_dir}.zip", output)
        print(f"copied to {output}", file=out)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tracked", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(dest="command", required=True)
    show_cmd = commands.add_parser("show", help="print one or more runs")
    show_cmd.add_argument("runs", nargs="+", metavar="RUN")
    compare_cmd = commands.add_parser("compare", help="final metrics side by side, best marked")
    compare_cmd.add_argument("runs", nargs="+", metavar="RUN")
    compare_cmd.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")
    compare_cmd.add_argument("--sort", metavar="METRIC", help="order runs by this metric, best first")
    compare_cmd.add_argument(
        "--paired", action="store_true", help="two runs: B − A over the examples both scored, with its p-value"
    )
    compare_cmd.add_argument("--id-field", default="id", help="the detail that pairs examples (default: id)")
    report_cmd = commands.add_parser("report", help="one self-contained HTML file")
    report_cmd.add_argument("runs", nargs="+", metavar="RUN")
    report_cmd.add_argument("-o", "--output", default="report.html", type=Path)
    merge_cmd = commands.add_parser("merge", help="join the shards of an evaluation (shard=(i, n)) into one run")
    merge_cmd.add_argument("runs", nargs="+", metavar="RUN")
    merge_cmd.add_argument("-o", "--output", type=Path, help="also copy the merged session's zip here")
    merge_cmd.add_argument("--id-field", default=None, help="match examples by this field (default: shard order)")
    upload_cmd = commands.add_parser("upload", help="send offline sessions to the configured ClearML server")
    upload_cmd.add_argument("runs", nargs="+", metavar="RUN")
    return top


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a console that cannot show a character gets it escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    # Whatever a session holds, control characters are shown, not obeyed.
    out = cast(TextIO, _Printable(out or sys.stdout))
    problems = Problems(cast(TextIO, _Printable(err or sys.stderr)))
    args = parser().parse_args(argv)
    try:
        if args.command == "upload":
            from .upload import upload

            upload(args.runs, problems, out)
            return EXIT_BAD_INPUT if problems.count else 0
        sessions = load_runs(args.runs, problems, events=args.command != "merge")  # merge needs journals only
        if args.command == "show":
            for number, session in enumerate(sessions):
                if number:
                    print("\n" + "-" * 60 + "\n", file=out)
                try:
                    show(session, out)
                except (BrokenPipeError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # noqa: BLE001 - one broken run must not hide the others
                    problems.add(f"{session.path}: cannot be shown ({type(exc).__name__}: {str(exc)[:200]})")
        elif args.command == "compare" and args.paired:
            if len(args.runs) != 2 or len(sessions) != 2:
                raise SessionError(f"--paired compares exactly two runs, got {len(sessions)}")
            out.write(
                render_paired(sessions, paired_rows(sessions[0], sessions[1], id_field=args.id_field), args.format)
            )
        elif args.command == "compare" and sessions:
            out.write(render_compare(compare_frame(sessions, args.sort), args.format))
        elif args.command == "merge" and sessions:
            merged_to(sessions, args.output, args.id_field, problems, out)
        elif args.command == "report" and sessions:
            from .report import write_report

            write_report(sessions, labels(sessions), args.output)
            print(f"report: {args.output.resolve()}", file=out)
    except SessionError as exc:
        problems.add(str(exc))
    except BrokenPipeError:
        # The reader went away (`tracked show ... | head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        problems.add(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}")
    return EXIT_BAD_INPUT if problems.count else 0


if __name__ == "__main__":
    raise SystemExit(main())
