"""Ray's two patterns, on a local Ray started by the script (CPU, 127.0.0.1): see tests/support/ray_evaluation.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import FOLDER

from tracked import read_session


@pytest.mark.ray
def test_ray_data_rows_and_ray_task_shards_give_the_unsharded_results(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    done = subprocess.run(
        [sys.executable, str(FOLDER / "ray_evaluation.py")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "cache"), "RAY_USAGE_STATS_ENABLED": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    reference = out["reference"]
    for run in ("rows", "merged"):  # (a) the driver records what the workers scored; (b) merged task shards
        assert out[run]["num_examples"] == 200
        assert out[run]["correct"] == reference["correct"]
        assert out[run]["loss"] == reference["loss"]
    assert "id" not in out["rows"]  # an identifier is a detail, not a metric
    merged = read_session(out["merged_session"])
    assert merged.single_values["num_shards"] == 4
