"""Names and texts anyone can write: unicode, empty, a thousand names or one per example, lone surrogates,
control characters, format strings. Each is written as given, escaped, or bounded; nothing is lost or obeyed."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.evaluations import yields

from tracked import read_session, tracked_eval


@pytest.mark.parametrize("name", ["f1/macro", "exact match", "точность", "精度", "a.b-c"])
def test_unusual_metric_names_are_reported_as_given(name: str) -> None:
    """Names with '/', spaces and unicode reach ClearML unchanged."""
    session = read_session(yields([{name: 1.0}, {name: 0.0}]).session_dir)
    assert session.scalars["Training Progress"][name] == [(0, 1.0), (1, 0.0)]
    assert session.single_values[name] == 0.5


def test_empty_metric_name_is_reported() -> None:
    """An empty name is a metric like any other (ClearML stores it as given)."""
    result = yields([{"": 1.0}])
    assert result[""] == 1.0
    assert read_session(result.session_dir).single_values[""] == 1.0


def test_a_thousand_metric_names() -> None:
    """1,000 distinct metrics: every one gets its series and its single value."""
    items = [{f"m{i:04d}": float(i) for i in range(1000)} for _ in range(3)]
    result = yields(items)
    session = read_session(result.session_dir)
    assert len(session.scalars["Training Progress"]) == 2000
    assert session.single_values["m0999"] == 999.0
    assert len(session.tables["Final Metrics"].rows) == len(result)


def test_a_metric_per_example_is_bounded_and_stays_small() -> None:
    """yield {example_id: score}: 1,000 metric names, then details; one warning; the examples stay sparse."""
    import resource

    n = 20_000

    @tracked_eval(verbose=False)
    def evaluate(dataset: range) -> Iterator[dict[str, float]]:
        for i in dataset:
            yield {f"example-{i}": 1.0, "acc": float(i % 2)}

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.warns(UserWarning, match="beyond the first 1000 metric names") as caught:
        result = evaluate(range(n))
    assert sum("metric names" in str(w.message) for w in caught) == 1
    assert result["acc"] == 0.5
    assert result["num_examples"] == n
    frame = result.examples
    assert len(frame) == n
    assert frame.loc[n - 1, "(more metrics)"] == "example-19999=1.0"  # one column for every name past the limit
    assert len(frame.columns) == 1000 + 1
    assert frame["example-0"].dtype.name.startswith("Sparse")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 1500  # 20,000 x 20,000 dense floats would be 3.2 GB


def test_a_lone_surrogate_in_a_detail_is_escaped_and_the_run_is_written() -> None:
    """Text decoded with surrogateescape (or a broken tokenizer) once made ClearML, the local copy and
    ``result.examples`` fail: UTF-8 cannot hold a lone surrogate. It is written as its escape."""
    from tracked import batch

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[Any]:
        yield {"s": 1.0, "p": "bad \udc80 text"}
        yield batch(s=[0.0], p=["also \udc81"])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing failed
        result = evaluate()
    assert result["s"] == 0.5
    assert result.examples["p"].tolist() == ["bad \\udc80 text", "also \\udc81"]
    assert result.session_dir is not None
    session = read_session(result.session_dir)
    assert session.status == "completed"
    assert session.examples()["p"].tolist() == ["bad \\udc80 text", "also \\udc81"]


def test_a_lone_surrogate_in_names_is_escaped_and_the_run_is_written() -> None:
    """In a metric's name, a detail's name and the task's name: written as its escape, nothing lost."""

    @tracked_eval(verbose=False, task_name="run \udc80", group_by="g\udc80")
    def evaluate() -> Iterator[Any]:
        for i in range(4):
            yield {"m\udc80": float(i % 2), "d\udc80": "v", "g\udc80": f"group {i % 2}"}

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing failed
        result = evaluate()
    assert result["m\udc80"] == 0.5
    assert list(result.examples.columns) == ["m\\udc80", "d\\udc80", "g\\udc80"]
    assert result.session_dir is not None
    session = read_session(result.session_dir)
    assert session.status == "completed"
    assert list(session.examples().columns) == ["m\\udc80", "d\\udc80", "g\\udc80"]
    assert "m\\udc80" in session.single_values


def test_control_characters_in_names_and_details_are_shown_not_obeyed(capsys: pytest.CaptureFixture[str]) -> None:
    """ESC, BEL and CR in a metric name or a detail reach the console and `tracked show` escaped."""
    from tracked.cli import main

    @tracked_eval(task_name="evil\x1b]0;pwned\x07")
    def evaluate(dataset: list[float]) -> Iterator[dict[str, object]]:
        for v in dataset:
            yield {"acc\x1b[31m": v, "prediction": "ok\rHIDDEN\x1b[2J"}

    result = evaluate([1.0])
    main(["show", str(result.session_dir)])
    main(["compare", str(result.session_dir), "--format", "markdown"])
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\r" not in out
    assert "\\x1b" in out


def test_details_are_text_never_templates_or_paths(clearml_cache: Path, tmp_path: Path) -> None:
    """Details that look like format strings, env vars or paths are written verbatim, nothing more."""
    tricky = [
        "{0} {name} %s %(x)d",
        "${HOME} $(rm -rf /)",
        str(tmp_path / "created-by-a-detail.txt"),
        "__import__('os')",
    ]

    @tracked_eval(verbose=False)
    def evaluate() -> Iterator[dict[str, object]]:
        for text in tricky:
            yield {"acc": 1.0, "prediction": text}

    result = evaluate()
    console = read_session(result.session_dir).console
    for text in tricky[:2]:
        assert text in console
    assert list(result.examples["prediction"]) == tricky
    assert not (tmp_path / "created-by-a-detail.txt").exists()


@pytest.mark.parametrize(
    ("options", "own"),
    [({}, "Metric Statistics"), ({"group_by": "lang"}, "Metrics by lang")],
    ids=["statistics", "group-table"],
)
def test_a_table_title_equal_to_one_of_trackeds_tables_never_hides_the_final_metrics(
    options: dict[str, Any], own: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """table_title set to the title of a table tracked reports beside it: the final metrics' table is
    titled '<title> (final metrics)' with one warning, and both tables are there when read back and shown."""
    from tracked import TrackedWarning
    from tracked.cli import main

    @tracked_eval(task_name="titles", verbose=False, table_title=own, **options)
    def evaluate() -> Iterator[dict[str, Any]]:
        for i in range(10):
            yield {"acc": float(i % 2), "lang": "en" if i < 5 else "fr"}

    with pytest.warns(TrackedWarning, match=f"table_title='{own}' is a table of tracked's own"):
        result = evaluate()
    session = read_session(result.session_dir)  # type: ignore[arg-type]
    final = session.tables[f"{own} (final metrics)"]
    assert final.header == ["Metric", "Value"]
    assert dict(map(tuple, final.rows))["acc"] == 0.5  # type: ignore[arg-type]
    assert "mean" in session.tables[own].header  # tracked's own table, under its own title
    assert session.statistics["acc"]["mean"] == 0.5
    assert main(["show", str(result.session_dir)]) == 0
    out = capsys.readouterr().out
    assert f"\n{own} (final metrics)\n" in out
    assert f"\n{own}\n" in out


def test_a_session_whose_tables_share_a_title_shows_both(capsys: pytest.CaptureFixture[str]) -> None:
    """Read back, two tables under one title (the final metrics titled like the statistics in a session
    written so, runs sharing a task): both are kept (the second as '<title> (2)'), the statistics still found."""
    import json

    from tracked.cli import main

    session = yields([{"acc": 1.0}, {"acc": 0.0}]).session_dir
    assert session is not None
    path = session / "metrics.jsonl"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        batch = json.loads(line)
        for event in batch:
            if event.get("type") == "plot" and event.get("metric") == "Final Metrics":
                event["metric"] = "Metric Statistics"
        lines.append(json.dumps(batch))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = read_session(session)
    titles = sorted(t for t in read.tables if t.startswith("Metric"))  # beside the PLOTS of examples
    assert titles == ["Metric Statistics", "Metric Statistics (2)"], titles
    headers = {tuple(read.tables[t].header[:2]) for t in titles}
    assert headers == {("Metric", "Value"), ("Metric", "mean")}
    assert read.statistics["acc"]["mean"] == 0.5
    assert main(["show", str(session)]) == 0
    assert "Metric Statistics (2)" in capsys.readouterr().out
