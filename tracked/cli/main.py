"""The ``tracked`` command: look at offline sessions without a ClearML server.

    tracked show RUN... [--format text|json]   status, metrics, progress charts, first examples
    tracked compare RUN... [--format table|markdown|csv|json] [--sort METRIC]
    tracked compare A B --paired [--id-field FIELD] [--format ...]
                     [--fail-if-worse METRIC [--margin X]]...   exit 1 when B is worse than A
    tracked report RUN... -o report.html
    tracked merge RUN... [-o FILE] [--task NAME]   join the shards of an evaluation into one run
    tracked upload RUN...            send sessions to the configured ClearML server
    tracked ls [FOLDER]              the runs in the offline cache: name, status, examples, date, path
    tracked rm RUN... [--older-than DAYS] [--dry-run]   delete sessions (folder and zip)

RUN is an offline session folder or its zip (globs are expanded). Sessions
are in $CLEARML_CACHE_DIR/offline (default ~/.clearml/cache/offline). A RUN
that cannot be read is one line on stderr; the others are still shown.
Exit code: 0, 1 when something failed at run time (a RUN unreadable, an
upload refused), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from ..common.errors import SessionError
from ..common.text import printable
from ..store.compare import compare_frame, labels, lower_is_better
from ..store.pairing import paired_rows
from ..store.runs import Problems, current, load_runs
from .render import render_compare, render_paired, show

if TYPE_CHECKING:
    from ..store.session import Session

#: Something failed at run time (a RUN that cannot be read, an upload refused); 2 is a usage error, as argparse's.
EXIT_FAILURE, EXIT_USAGE = 1, 2
#: ``--fail-if-worse``: the new run is worse (a CI gate's failure, as a failure at run time is).
EXIT_WORSE = 1


class _Printable:
    """A text stream that escapes control characters (see ``common.text.printable``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Gate(argparse.Action):
    """``--fail-if-worse METRIC [--margin X]``, repeatable: a list of [metric, margin], each margin given
    right after its metric."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: str | None = None) -> None:
        gates: list[list[Any]] = namespace.fail_if_worse
        if option == "--margin":
            if not gates or gates[-1][1] is not None:
                parser.error("--margin X follows the --fail-if-worse METRIC it belongs to")
            if not (value >= 0 and value < float("inf")):
                parser.error(f"--margin must be a finite number ≥ 0, got {value}")
            gates[-1][1] = value
        else:
            namespace.fail_if_worse = [*gates, [value, None]]


def gate(
    sessions: Sequence[Session], gates: list[list[Any]], id_field: str, lower: dict[str, bool], out: TextIO
) -> bool:
    """``--fail-if-worse``: one line per metric saying whether B is worse than A; True if any is. A run that
    did not complete fails the gate: its scores cover part of its examples."""
    from ..stats import worse

    failed = False
    for role, session in zip("AB", sessions, strict=True):
        if session.status not in ("completed", "unknown"):
            print(f"FAIL  {role} did not complete ({session.status}): its scores cover part of its examples", file=out)
            failed = True
    pairing = paired_rows(sessions[0], sessions[1], id_field=id_field, metrics=[metric for metric, _ in gates])
    for (metric, margin), row in zip(gates, pairing.rows, strict=True):
        verdict, why = worse(row, lower_is_better(metric, lower), margin or 0.0)
        failed |= verdict
        print(f"{'FAIL' if verdict else 'ok'}  {why}", file=out)
    return failed


def merged_to(
    sessions: Sequence[Session],
    output: Path | None,
    id_field: str | None,
    task: str | None,
    problems: Problems,
    out: TextIO,
) -> None:
    """``tracked merge``: the shards of each evaluation given as one run (a new offline session, or a task
    with a server). Runs of other tasks (``--task``) and runs that are no shard are skipped, each named."""
    import shutil

    from ..common.errors import MergeError
    from ..scaleout.merge import by_evaluation, merge

    if output is not None and not output.parent.is_dir():
        problems.add(f"not merged: {output.parent} is not a folder (-o)")
        return
    if task is not None:
        for session in sessions:
            if session.name != task:
                problems.note(f"skipped {session.path}: task {session.name!r}, not {task!r} (--task)")
        sessions = [s for s in sessions if s.name == task]
    groups, others = by_evaluation(sessions)
    for session, why in others:
        problems.note(f"skipped {session.path}: {why}")
    if not groups:
        problems.add("not merged: no shards among the runs given" + (f" of task {task!r}" if task else ""))
        return
    if output is not None and len(groups) > 1:
        names = ", ".join(sorted({group[0].name for group in groups}))
        problems.add(f"not merged: -o names one file, but the runs are shards of {len(groups)} evaluations "
                     f"({names}); choose one with --task NAME")  # fmt: skip
        return
    if len(groups) > 1:
        problems.note(f"the runs given are shards of different evaluations ({len(groups)}): each is merged on its own")
    for group in groups:
        try:
            result = merge(group, id_field=id_field, verbose=False)
        except MergeError as exc:
            problems.add(f"not merged: {group[0].name}: {exc}")
            continue
        where = result.session_dir or result.task_id or result.saved_to
        print(
            f"merged {len(group)} shards, {result['num_examples']:,} examples of {group[0].name} -> {where}", file=out
        )
        if output is not None and result.session_dir is not None:
            shutil.copyfile(f"{result.session_dir}.zip", output)
            print(f"copied to {output}", file=out)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tracked", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from ..common.meta import version

    top.add_argument("--version", action="version", version=f"tracked {version()}")
    commands = top.add_subparsers(dest="command", required=True)
    show_cmd = commands.add_parser("show", help="print one or more runs")
    show_cmd.add_argument("runs", nargs="+", metavar="RUN")
    show_cmd.add_argument("--format", choices=["text", "json"], default="text")
    compare_cmd = commands.add_parser("compare", help="final metrics side by side, best marked")
    compare_cmd.add_argument("runs", nargs="+", metavar="RUN")
    compare_cmd.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")
    compare_cmd.add_argument("--sort", metavar="METRIC", help="order runs by this metric, best first")
    compare_cmd.add_argument(
        "--paired", action="store_true", help="two runs: B − A over the examples both scored, with its p-value"
    )
    compare_cmd.add_argument("--id-field", default="id", help="the detail that pairs examples (default: id)")
    compare_cmd.add_argument(
        "--fail-if-worse",
        metavar="METRIC",
        action=_Gate,
        default=[],
        help="with --paired: exit 1 when B is worse than A on METRIC at the 95%% level (one-sided); repeatable",
    )
    compare_cmd.add_argument(
        "--margin",
        metavar="X",
        type=float,
        action=_Gate,
        help="the --fail-if-worse before it fails only when B is worse by more than X (default 0)",
    )
    for flag, words in (("--lower-is-better", "lower"), ("--higher-is-better", "higher")):
        compare_cmd.add_argument(
            flag,
            metavar="METRIC",
            action="append",
            default=[],
            help=f"{words} values of METRIC are better (default: lower for loss, error, time, size words); repeatable",
        )
    report_cmd = commands.add_parser("report", help="one self-contained HTML file")
    report_cmd.add_argument("runs", nargs="+", metavar="RUN")
    for command in (compare_cmd, report_cmd):
        command.add_argument(
            "--include-superseded",
            action="store_true",
            help="keep runs that another run resumed (left out by default: the resuming run holds their examples)",
        )
    report_cmd.add_argument("-o", "--output", default="report.html", type=Path)
    merge_cmd = commands.add_parser("merge", help="join the shards of an evaluation (shard=(i, n)) into one run")
    merge_cmd.add_argument("runs", nargs="+", metavar="RUN")
    merge_cmd.add_argument("-o", "--output", type=Path, help="also copy the merged session's zip here")
    merge_cmd.add_argument("--id-field", default=None, help="match examples by this field (default: shard order)")
    merge_cmd.add_argument("--task", metavar="NAME", help="merge only the shards of this task (skip the other runs)")
    upload_cmd = commands.add_parser("upload", help="send offline sessions to the configured ClearML server")
    upload_cmd.add_argument("runs", nargs="+", metavar="RUN")
    ls_cmd = commands.add_parser("ls", help="list the runs in the offline cache ($CLEARML_CACHE_DIR/offline)")
    ls_cmd.add_argument("folder", nargs="?", type=Path, help="another folder of sessions")
    ls_cmd.add_argument("--format", choices=["table", "json"], default="table")
    rm_cmd = commands.add_parser("rm", help="delete sessions (folder and zip)")
    rm_cmd.add_argument("runs", nargs="*", metavar="RUN", help="sessions (globs expanded); none: the whole cache")
    rm_cmd.add_argument("--older-than", type=float, metavar="DAYS", help="only runs started more than DAYS ago")
    rm_cmd.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    return top


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a console that cannot show a character gets it escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    # Whatever a session holds, control characters are shown, not obeyed.
    out = cast(TextIO, _Printable(out or sys.stdout))
    problems = Problems(cast(TextIO, _Printable(err or sys.stderr)))
    command = parser()
    args = command.parse_args(argv)
    if args.command == "rm" and not args.runs and args.older_than is None:
        command.error("rm: give the runs to remove, or --older-than DAYS for the whole cache")
    if getattr(args, "fail_if_worse", None) and not args.paired:
        command.error("--fail-if-worse compares two runs example by example: add --paired")
    lower = {m: True for m in getattr(args, "lower_is_better", [])}
    lower |= {m: False for m in getattr(args, "higher_is_better", [])}
    try:
        if args.command == "upload":
            from .upload import upload

            upload(args.runs, problems, out)
            return EXIT_FAILURE if problems.count else 0
        if args.command in ("ls", "rm"):
            from .listing import list_runs, remove_runs

            if args.command == "ls":
                list_runs(args.folder, args.format, out)
            else:
                remove_runs(args.runs, args.older_than, args.dry_run, problems, out)
            return EXIT_FAILURE if problems.count else 0
        if args.command == "compare" and args.paired and len(args.runs) > 2:
            command.error(f"compare --paired compares exactly two runs, {len(args.runs)} given")
        sessions = load_runs(args.runs, problems, events=args.command != "merge")  # merge needs journals only
        said = [(session, len(session.problems)) for session in sessions]
        if args.command in ("compare", "report") and not args.include_superseded:
            sessions = current(sessions, problems)
        if args.command == "show" and args.format == "json":
            from .listing import show_json

            out.write(show_json(sessions))
        elif args.command == "show":
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
            if len(sessions) != 2:  # two RUNs, or one glob matching two
                raise SessionError(f"--paired compares exactly two runs, {len(sessions)} found")
            if args.fail_if_worse:
                failed = gate(sessions, args.fail_if_worse, args.id_field, lower, out)
                return EXIT_FAILURE if problems.count else EXIT_WORSE if failed else 0
            out.write(render_paired(sessions, paired_rows(sessions[0], sessions[1], args.id_field), args.format))
        elif args.command == "compare" and sessions:
            out.write(render_compare(compare_frame(sessions, args.sort, lower), args.format))
        elif args.command == "merge" and sessions:
            merged_to(sessions, args.output, args.id_field, args.task, problems, out)
        elif args.command == "report" and sessions:
            from .report import write_report

            write_report(sessions, labels(sessions), args.output)
            print(f"report: {args.output.resolve()}", file=out)
        for session, before in said:  # what a command found reading details it asked for (an unreadable line)
            for problem in session.problems[before:]:
                problems.add(f"{session.path}: {problem}; showing what could be read")
    except SessionError as exc:
        problems.add(str(exc))
    except BrokenPipeError:
        # The reader went away (`tracked show ... | head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        problems.add(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}")
    return EXIT_FAILURE if problems.count else 0


if __name__ == "__main__":
    raise SystemExit(main())
