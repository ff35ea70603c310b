"""The examples artifact: zstd parquet that reads back equal, never a pickle; the organisation's configured
format honoured; csv.gz without pyarrow; read back by ``Session.examples()`` without a journal."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from support.clearml_server import StandInServer
from support.scripts import only_session, run_script

from tracked import read_session, tracked_eval


@tracked_eval(verbose=False, details=["label"])
def scored(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from items


ITEMS = [
    {"acc": 1.0, "f1": 0.5, "label": "3", "prediction": "Paris"},
    {"acc": 0.0, "f1": 0.25, "label": "1", "prediction": "Lyon\nand more"},
    {"acc": True, "label": "2", "prediction": "ünïcode"},
]


def only_artifact(task: dict[str, Any]) -> dict[str, Any]:
    (artifact,) = task["execution"]["artifacts"]
    return dict(artifact)


def test_the_examples_are_zstd_parquet_that_read_back_equal_and_no_pickle_is_written() -> None:
    """Parquet (zstd), equal to result.examples with its dtypes and index; no pickle anywhere in the session."""
    result = scored(ITEMS)
    session = read_session(result.session_dir)
    artifact = only_artifact(session.task)
    assert artifact["type_data"]["content_type"] == "application/parquet"
    assert artifact["uri"].endswith(".parquet")
    file = Path(artifact["uri"])
    assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "ZSTD"
    pd.testing.assert_frame_equal(pd.read_parquet(file), result.examples)
    data = Path(result.session_dir or "") / "data"
    assert not [p for p in data.rglob("*") if p.suffix in (".pickle", ".pkl")]
    assert all(not p.read_bytes().startswith(b"\x80") for p in data.rglob("*") if p.is_file())


def test_without_a_journal_the_session_reads_the_artifact_and_never_a_pickle(tmp_path: Path) -> None:
    """Session.examples() falls back on the parquet artifact, equal; an old pickle artifact is refused in one line."""
    result = scored(ITEMS)
    folder = tmp_path / "copy"
    shutil.copytree(result.session_dir or "", folder)
    shutil.rmtree(folder / "tracked")
    pd.testing.assert_frame_equal(read_session(folder).examples(), result.examples)

    task = json.loads((folder / "task.json").read_text())
    artifact = only_artifact(task)
    artifact["type_data"]["content_type"] = "application/pickle"  # as tracked wrote it before parquet
    (folder / "task.json").write_text(json.dumps(task))
    session = read_session(folder)
    assert session.examples().empty
    assert any("never unpickles" in problem for problem in session.problems)


def test_online_the_examples_reach_the_files_host_as_parquet(tmp_path: Path) -> None:
    """Against the stand-in: the uploaded bytes are parquet and read back equal to the run's examples."""
    script = """
        import json
        from tracked import tracked_eval

        @tracked_eval(verbose=False, details=["label"])
        def scored(items):
            yield from items

        result = scored({items!r})
        result.examples.to_json("{out}", orient="split")
        print("TASK_ID", result.task_id)
    """
    out = tmp_path / "examples.json"
    with StandInServer() as server:
        done = run_script(script.format(items=ITEMS, out=out), tmp_path / "cache", env=server.env())
        assert done.returncode == 0, done.stdout + done.stderr
        (task_id,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("TASK_ID ")]
        artifact = only_artifact(server.tasks[task_id])
        assert artifact["type_data"]["content_type"] == "application/parquet"
        data = server.files[artifact["uri"].removeprefix(server.files_url)]
    back = pd.read_parquet(io.BytesIO(data))
    expected = pd.read_json(out, orient="split")
    assert list(back.columns) == list(expected.columns)
    assert back["prediction"].tolist() == [item["prediction"] for item in ITEMS]
    assert back["acc"].tolist() == [1.0, 0.0, 1.0]


CONFIGURED = """
    from tracked import tracked_eval

    @tracked_eval(verbose=False)
    def scored(items):
        yield from items

    scored([{"acc": 1.0, "prediction": "a"}, {"acc": 0.0, "prediction": "b"}])
"""

NO_PYARROW = (
    """
    import sys

    class NoPyarrow:
        def find_spec(self, name, path=None, target=None):
            if name == "pyarrow" or name.startswith("pyarrow."):
                raise ModuleNotFoundError("No module named 'pyarrow'")
            return None

    sys.meta_path.insert(0, NoPyarrow())
"""
    + CONFIGURED
)


def test_the_organisations_configured_format_is_honoured(tmp_path: Path) -> None:
    """sdk.development.artifacts.default_pandas_dataframe_extension_name set: ClearML's configured format."""
    config = tmp_path / "clearml.conf"
    config.write_text('sdk { development { artifacts { default_pandas_dataframe_extension_name: ".feather" } } }\n')
    done = run_script(CONFIGURED, tmp_path / "cache", env={"CLEARML_CONFIG_FILE": str(config)})
    assert done.returncode == 0, done.stdout + done.stderr
    session = read_session(only_session(tmp_path / "cache"))
    artifact = only_artifact(session.task)
    assert artifact["type_data"]["content_type"] == "application/feather"
    assert pd.read_feather(artifact["uri"])["prediction"].tolist() == ["a", "b"]


def test_without_pyarrow_the_examples_are_csv_gz(tmp_path: Path) -> None:
    """pyarrow missing: ClearML's own default, csv.gz (never a pickle); read back by the session reader."""
    done = run_script(NO_PYARROW, tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = only_session(tmp_path / "cache")
    artifact = only_artifact(read_session(folder).task)
    assert artifact["type_data"]["content_type"] == "text/csv"
    assert artifact["uri"].endswith(".csv.gz")
    shutil.rmtree(folder / "tracked")
    assert read_session(folder).examples()["prediction"].tolist() == ["a", "b"]
