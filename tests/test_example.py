"""The README's main example, run as a user runs it: the seed scenario end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracked import read_session

ROOT = Path(__file__).resolve().parents[1]


def test_seed_scenario_leaves_the_documented_session(clearml_cache: Path) -> None:
    """10 examples: 10 progress points at 0-9, the three single values, the Final Metrics table."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "evaluate_qa.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=True,
    )
    (folder,) = [p for p in (clearml_cache / "offline").iterdir() if p.is_dir()]
    assert f"offline session: {folder}" in done.stdout
    assert f"upload it later: tracked upload {folder}" in done.stdout
    session = read_session(folder)
    points = session.scalars["Training Progress"]["token_recall"]
    assert [i for i, _ in points] == list(range(10))
    mean = sum(v for _, v in points) / 10
    assert session.single_values["token_recall"] == pytest.approx(mean)
    assert session.single_values["num_examples"] == 10
    assert session.single_values["duration_seconds"] >= 0
    table = dict(map(tuple, session.tables["Final Metrics"].rows))  # type: ignore[arg-type]
    assert {"token_recall", "num_examples", "duration_seconds"} <= set(table)
    assert table["token_recall"] == pytest.approx(mean)
    assert f"token_recall = {mean:.4f} over 10 examples" in done.stdout
    assert session.status == "completed"
    assert (folder.parent / f"{folder.name}.zip").is_file()
    assert read_session(folder.parent / f"{folder.name}.zip").single_values == session.single_values


def test_import_is_light_and_decorating_does_no_io() -> None:
    """`import tracked` and applying the decorator import neither clearml nor pandas."""
    code = (
        "import sys, tracked\n"
        "@tracked.tracked_eval\n"
        "def f():\n    yield 1.0\n"
        "heavy = [m for m in ('clearml', 'pandas', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_the_walkthrough_two_models_compared_paired(clearml_cache: Path) -> None:
    """The README's walkthrough: a good and a weak model over the same questions, compared example by example."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for model in ("good", "weak"):
        subprocess.run(
            [sys.executable, str(ROOT / "examples" / "evaluate_qa.py"), "--model", model],
            capture_output=True, env=env, timeout=120, check=True,
        )  # fmt: skip
    runs = {read_session(p).name: p for p in (clearml_cache / "offline").iterdir() if p.is_dir()}
    good, weak = runs["qa token recall (good)"], runs["qa token recall (weak)"]
    done = subprocess.run(
        [sys.executable, "-m", "tracked", "compare", str(good), str(weak), "--paired", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["paired"]
    assert row["metric"] == "token_recall"
    assert row["n"] == 10
    assert row["diff"] < 0
    assert read_session(weak).single_values["token_recall"] < read_session(good).single_values["token_recall"]


def test_a_users_test_run_sees_no_warnings_from_clearmls_dependencies(clearml_cache: Path) -> None:
    """With every warning shown (as in a user's pytest run), an evaluation brings none of ClearML's own."""
    code = (
        "from tracked import tracked_eval\n"
        "@tracked_eval(verbose=False)\n"
        "def evaluate(dataset):\n    yield from dataset\n"
        "evaluate([1.0, 2.0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    assert "Warning" not in done.stderr, done.stderr[:2000]
