"""The `tracked` command, end to end on sessions that real @tracked_eval runs wrote."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT

from tracked import tracked_eval
from tracked.cli import main


def run_eval(name: str, values: list[float], max_points: int = 5000) -> Path:
    @tracked_eval(verbose=False, task_name=name, max_points=max_points)
    def evaluate(dataset: list[float]) -> Iterator[dict[str, object]]:
        for i, value in enumerate(dataset):
            yield {"token_recall": value, "prediction": f"answer {i}"}

    folder = evaluate(values).session_dir
    assert folder is not None
    return folder


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def three_runs() -> list[Path]:
    return [run_eval("Exp #1", [0.5, 1.0]), run_eval("Exp #2", [0.75, 1.0, 0.75, 1.0]), run_eval("Exp #3", [0.25, 0.5])]


def test_show_prints_status_values_table_chart_and_examples(three_runs: list[Path]) -> None:
    """show: status, duration, single values, Final Metrics, a text chart per series, first examples."""
    code, out, err = cli("show", str(three_runs[1]))
    assert code == 0, err
    assert "status    completed" in out
    assert "duration  " in out
    assert "token_recall      0.875" in out
    assert "Final Metrics" in out
    assert "token_recall (running mean)" in out
    assert "4 points, examples 0-3" in out
    assert "#0  token_recall=0.7500  prediction=answer 0" in out


def test_show_reads_a_zip_too(three_runs: list[Path]) -> None:
    """A session's zip shows the same as its folder."""
    code, out, _ = cli("show", f"{three_runs[0]}.zip")
    assert code == 0
    assert "Exp #1" in out


def test_compare_marks_the_best_and_sorts(three_runs: list[Path]) -> None:
    """compare: one row per run, one column per final metric, the best marked; --sort orders best first."""
    code, out, _ = cli("compare", *map(str, three_runs), "--sort", "token_recall")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["run", "token_recall", "num_examples"]
    assert [r.split("  ")[0] for r in rows[1:4]] == ["Exp #2", "Exp #1", "Exp #3"]
    # Two and four examples: t intervals on 3 and 1 degrees of freedom, and Welch's test cannot tell
    # Exp #2 from either (from Exp #3: p = 0.09 on 1.7 degrees of freedom).
    assert "0.875 ± 0.2297 =" in rows[1]
    assert "0.75 ± 3.177 =" in rows[2]
    assert "0.375 ± 1.588 =" in rows[3]


def test_compare_formats(three_runs: list[Path]) -> None:
    """markdown marks the best in bold; csv is plain; json lists runs and the best per metric."""
    paths = list(map(str, three_runs))
    assert "| Exp #2 | _0.875 ± 0.2297_ |" in cli("compare", *paths, "--format", "markdown")[1]
    csv = cli("compare", *paths, "--format", "csv")[1]
    header = "run,status,token_recall,token_recall_ci_low,token_recall_ci_high,num_examples"
    assert csv.splitlines()[0].startswith(header)
    assert csv.splitlines()[2].split(",")[5] == "4"  # Exp #2's num_examples: a count, not 4.0
    data = json.loads(cli("compare", *paths, "--format", "json")[1])
    assert [r["run"] for r in data["runs"]] == ["Exp #1", "Exp #2", "Exp #3"]
    assert data["runs"][1]["num_examples"] == 4  # a count, not 4.0
    assert data["tied"]["token_recall"] == ["Exp #2", "Exp #1", "Exp #3"]
    assert "token_recall" not in data["best"]


def test_compare_accepts_globs(three_runs: list[Path]) -> None:
    """A glob finds the runs, oldest first."""
    code, out, _ = cli("compare", str(three_runs[0].parent / "*.zip"))
    assert code == 0
    assert [line.split("  ")[0] for line in out.splitlines()[1:4]] == ["Exp #1", "Exp #2", "Exp #3"]


def test_bad_inputs_are_one_line_each_and_others_still_shown(three_runs: list[Path], tmp_path: Path) -> None:
    """Missing path, corrupt zip, not a session, truncated metrics: one stderr line each, exit 1, no traceback."""
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really")
    truncated = tmp_path / "truncated"
    shutil.copytree(three_runs[2], truncated)
    metrics = truncated / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-40], encoding="utf-8")
    crashed = tmp_path / "crashed"
    shutil.copytree(three_runs[0], crashed)
    task = json.loads((crashed / "task.json").read_text())
    task.pop("hyperparams", None)  # a run that died before tracked recorded its status
    shutil.rmtree(crashed / "tracked")  # ... and before its journal was written
    (crashed / "task.json").write_text(json.dumps(task))
    args = [str(tmp_path / "missing"), str(corrupt), str(tmp_path), str(truncated), str(crashed), str(three_runs[1])]
    code, out, err = cli("compare", *args)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 5, err
    assert "missing: no such file or folder" in lines[0]
    assert "not a readable session zip" in lines[1]
    assert "not an offline ClearML session" in lines[2]
    assert "metrics.jsonl line" in lines[3]
    assert "no final status recorded" in lines[4]
    assert "Traceback" not in err
    assert "Exp #2" in out  # the good runs are still compared


def test_report_is_self_contained(three_runs: list[Path], tmp_path: Path) -> None:
    """report: one HTML file with no external scripts or styles, holding every run's tabs."""
    output = tmp_path / "report.html"
    code, _out, _ = cli("report", *map(str, three_runs), "-o", str(output))
    assert code == 0
    page = output.read_text(encoding="utf-8")
    assert re.search(r"<script[^>]*\bsrc=", page) is None  # every script is inline
    assert re.search(r"<link[^>]*\bhref=", page) is None  # and every style
    expected = ("SCALARS", "PLOTS", "CONSOLE", "Compare", "Exp #3", "Training Progress", "token_recall (running mean)")
    for text in expected:
        assert text in page


def test_upload_without_a_server_is_a_clear_error(three_runs: list[Path]) -> None:
    """upload with no server configured: one line saying so, exit 1."""
    code, _, err = cli("upload", str(three_runs[0]))
    assert code == 1
    assert "no ClearML server is configured" in err


def test_big_session_shows_quickly_enough_to_be_useful() -> None:
    """A 200,000-example run (charts capped at max_points) shows and reports from its bounded session."""
    folder = run_eval("big", [i % 7 / 7 for i in range(200_000)], max_points=2000)
    code, out, _ = cli("show", str(folder))
    assert code == 0
    assert "2000 points, examples" in out


def test_console_command_and_python_m(three_runs: list[Path]) -> None:
    """`python -m tracked` runs the same command line."""
    done = subprocess.run(
        [sys.executable, "-m", "tracked", "compare", str(three_runs[0])],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Exp #1" in done.stdout


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed: .ci/run installs it")
    return found


def test_report_renders_in_a_headless_browser(three_runs: list[Path], tmp_path: Path) -> None:
    """Opened in Chromium: no console errors; the screenshot shows the compare table and the charts."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed here (CI installs it)")
    output = tmp_path / "report.html"
    assert cli("report", *map(str, three_runs), "-o", str(output))[0] == 0
    from PIL import Image

    def screenshot(attempt: int) -> tuple[list[str], dict[tuple[int, int, int], int]]:
        shot = tmp_path / f"shot{attempt}.png"
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--run-all-compositor-stages-before-draw", f"--user-data-dir={tmp_path / f'profile{attempt}'}",
             "--enable-logging=stderr", "--log-level=0", "--window-size=1280,1400", "--virtual-time-budget=20000",
             f"--screenshot={shot}", output.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
        colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or []
        return console, {color: count for count, color in colors}

    def line_pixels(counts: dict[tuple[int, int, int], int]) -> int:
        return sum(n for (r, g, b), n in counts.items() if abs(r - 99) < 12 and abs(g - 110) < 12 and b > 230)

    # Headless Chromium may take its screenshot before plotly's chart is painted on a loaded machine
    # (the legend's 56 pixels, no line): a page that draws it is seen drawn within three shots.
    for attempt in range(3):
        console, counts = screenshot(attempt)
        assert console == [], console
        if line_pixels(counts) > 200:
            break
    assert counts.get((238, 240, 246), 0) > 500  # table header cells (#eef0f6)
    assert counts.get((227, 246, 241), 0) > 100  # the best value's cell (#e3f6f1)
    assert line_pixels(counts) > 200  # the first run's line in the progress chart


def test_zip_with_folder_inside_is_read(three_runs: list[Path], tmp_path: Path) -> None:
    """A zip someone made of the session folder (files one level down) reads too."""
    archive = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in three_runs[0].iterdir():
            if file.is_file():
                out.write(file, f"session/{file.name}")
    code, out_text, _ = cli("show", str(archive))
    assert code == 0
    assert "Exp #1" in out_text


def test_upload_sends_an_interrupted_run_as_stopped_with_its_means(tmp_path: Path) -> None:
    """An interrupted session (its writer died) reaches the server stopped, with the means of what it recorded."""
    from support.clearml_server import StandInServer

    from tracked.store.checksums import extend_crcs

    @tracked_eval(verbose=False, task_name="died")
    def evaluate(dataset: list[float]) -> Iterator[dict[str, float]]:
        yield from ({"token_recall": value} for value in dataset)
        raise RuntimeError("the end")  # a run that did not complete keeps its journal's examples

    with pytest.raises(RuntimeError):
        evaluate([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    folder = next((Path(os.environ["CLEARML_CACHE_DIR"]) / "offline").glob("offline-*/tracked")).parent
    state_path = folder / "tracked" / "0" / "run.json"
    state = json.loads(state_path.read_text())
    state.update(status="running", count=3)  # as a kill -9 leaves it: still "running", no writer, 3 recorded
    entry = state["series"]["token_recall"]
    entry["size"] = 3  # with the checksums of those 3 values, as that flush committed them
    written = (folder / "tracked" / "0" / f"{entry['file']}.values").read_bytes()[: 3 * 8]
    entry["crc"]["values"] = {"crc": extend_crcs([], 0, written), "items": 3}
    state_path.write_text(json.dumps(state))
    (folder / "metrics.jsonl").write_text(  # only the points streamed before the kill, no final report
        "\n".join(line for line in (folder / "metrics.jsonl").read_text().splitlines() if "Summary" not in line)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(HOME=str(tmp_path), CLEARML_CACHE_DIR=str(tmp_path / "upload-cache"))
    with StandInServer() as server:
        env.update(server.env())
        proc = subprocess.run(
            [sys.executable, "-m", "tracked", "upload", str(folder)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "(interrupted)" in proc.stdout
        (task,) = server.tasks.values()
        assert task["status"] == "stopped"
        assert task["hyperparams"]["properties"]["tracked_status"]["value"] == "interrupted"
        singles = {e["variant"]: e["value"] for e in server.events(type="training_stats_scalar") if e["iter"] < 0}
        assert singles["token_recall"] == pytest.approx(2 / 3)
        assert singles["num_examples"] == 3


def test_show_gives_a_failed_runs_error_and_its_arguments_through_the_real_command() -> None:
    @tracked_eval(verbose=False, task_name="broken")
    def evaluate(dataset: list[float], threshold: int = 3) -> Iterator[float]:
        yield from dataset
        raise ValueError("tokenizer missing")

    with pytest.raises(ValueError, match="tokenizer missing"):
        evaluate([1.0, 2.0] * 6000, threshold=7)
    (folder,) = [t.parent for t in Path(os.environ["CLEARML_CACHE_DIR"]).glob("offline/*/task.json")]
    done = subprocess.run(
        [sys.executable, "-m", "tracked", "show", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert "error     ValueError: tokenizer missing" in done.stdout
    assert "arguments (Args)" in done.stdout
    assert "threshold  7" in done.stdout
    assert "num_examples      12000" in done.stdout  # a count, not 1.2e+04


def test_a_glob_matching_a_folder_and_its_zip_shows_the_run_once(three_runs: list[Path]) -> None:
    code, out, _ = cli("compare", str(three_runs[0].parent / "*"))
    assert code == 0
    assert [line.split("  ")[0] for line in out.splitlines()[1:4]] == ["Exp #1", "Exp #2", "Exp #3"]
    assert out.count("Exp #1") == 1


def test_report_compares_runs_of_different_lengths_on_a_shared_axis(tmp_path: Path) -> None:
    """A 1,000-example run beside 10-example ones: running means over % of each run, raw points a click away."""
    long_run = run_eval("long", [i % 3 / 2 for i in range(1000)])
    short_run = run_eval("short", [0.5] * 10)
    output = tmp_path / "report.html"
    assert cli("report", str(long_run), str(short_run), "-o", str(output))[0] == 0
    page = output.read_text(encoding="utf-8")
    assert "% of the run" in page
    assert '"label":"example"' in page.replace(" ", "")
    assert '"visible":"legendonly"' in page.replace(" ", "")  # raw points hidden, not dropped
    assert "Paired comparison" in page
