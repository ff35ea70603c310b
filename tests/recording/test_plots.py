"""What PLOTS shows of a run's examples: the first ones, the lowest-scoring ones, each metric's histogram
(capped), offline and against the stand-in server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.clearml_server import StandInServer
from support.scripts import run_script

from tracked import read_session, tracked_eval
from tracked.sinks.clearml.plots import CELL_CHARS, ROWS


@tracked_eval(verbose=False, task_name="plots")
def evaluate(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"acc": (i * 37 % 100) / 100, "exact": i % 2, "answer": f"a{i} " + "long " * (100 if i == 3 else 1)}


def histograms(folder: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        for event in json.loads(line):
            if event.get("type") == "plot" and event["metric"] == "Score distribution":
                found[event["variant"]] = json.loads(event["plot_str"])["data"][0]
    return found


def test_plots_hold_the_first_and_the_lowest_examples_capped() -> None:
    """The first ROWS examples with their details, texts cut to CELL_CHARS; the ROWS lowest by the first metric."""
    result = evaluate(300)
    session = read_session(result.session_dir)
    first = session.tables["Examples"]
    assert first.header == ["index", "acc", "exact", "answer"]
    assert [row[0] for row in first.rows] == list(range(ROWS))
    assert first.rows[1][3] == "a1 long "
    assert len(first.rows[3][3]) == CELL_CHARS
    assert first.rows[3][3].endswith("…")
    lowest = session.tables["Lowest-scoring examples"]
    assert lowest.series == "acc"
    expected = result.examples.sort_values("acc", kind="stable").head(ROWS)
    assert [row[0] for row in lowest.rows] == expected.index.tolist()
    assert [row[1] for row in lowest.rows] == pytest.approx(expected["acc"].tolist())


def test_each_metric_has_a_histogram_of_its_per_example_values() -> None:
    """A bar per value for a metric of few values (0/1), BINS bars otherwise; the counts add up to the examples."""
    result = evaluate(300)
    found = histograms(Path(result.session_dir or ""))
    assert set(found) == {"acc", "exact"}
    assert found["exact"]["x"] == ["0", "1"]
    assert found["exact"]["y"] == [150, 150]
    assert len(found["acc"]["y"]) == 20
    assert sum(found["acc"]["y"]) == 300


ONLINE = """
    from tracked import tracked_eval

    @tracked_eval(verbose=False)
    def evaluate(n):
        for i in range(n):
            yield {"acc": (i % 4) / 4, "answer": f"a{i}"}

    print("TASK_ID", evaluate(40).task_id)
"""


def test_online_the_plots_reach_the_server(tmp_path: Path) -> None:
    """Against the stand-in: the two example tables and the histogram are plots of the task."""
    with StandInServer() as server:
        done = run_script(ONLINE, tmp_path / "cache", env=server.env())
        assert done.returncode == 0, done.stdout + done.stderr
        (task_id,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("TASK_ID ")]
        plots = {(e["metric"], e["variant"]): json.loads(e["plot_str"]) for e in server.events(task_id, "plot")}
    first = plots["Examples", "summary"]["data"][0]
    assert first["type"] == "table"
    assert first["cells"]["values"][0] == list(range(ROWS))
    lowest = plots["Lowest-scoring examples", "acc"]["data"][0]
    assert lowest["cells"]["values"][1] == [0.0] * 10 + [0.25] * 10
    histogram = plots["Score distribution", "acc"]["data"][0]
    assert (histogram["x"], histogram["y"]) == (["0", "0.25", "0.5", "0.75"], [10, 10, 10, 10])
