"""The examples artifact of an offline session, for a session without a journal (one it could not write).

Parquet, feather and csv.gz are read; a pickle (what tracked wrote before parquet, or what an organisation
configured) is never loaded: unpickling runs whatever code the file holds. Sessions that have a journal
(every session tracked writes) give their examples from it, whatever the artifact's format.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: The artifact's format, by the ``content_type`` ClearML recorded.
_READERS = {"application/parquet": "read_parquet", "application/feather": "read_feather", "text/csv": "read_csv"}


def examples_artifact(path: Path, task: dict[str, Any], problems: list[str]) -> pd.DataFrame | None:
    """The ``examples`` artifact read back, or None (with a problem saying why, when there is one)."""
    import pandas as pd

    artifacts = task.get("execution", {}).get("artifacts") or []
    found = [a for a in artifacts if isinstance(a, dict) and str(a.get("key", "")).startswith("examples")]
    if not found:
        return None
    artifact = found[-1]  # with steps, the latest step's
    kind = str((artifact.get("type_data") or {}).get("content_type", ""))
    reader = _READERS.get(kind)
    if reader is None:
        problems.append(f"examples: the artifact is {kind or 'of no known format'}; tracked never unpickles one")
        return None
    data = _bytes(path, str(artifact.get("uri", "")))
    if data is None:
        problems.append("examples: the artifact's file is not in the session")
        return None
    try:
        if reader == "read_csv":
            frame: pd.DataFrame = pd.read_csv(io.BytesIO(data), compression="gzip", index_col=0)
        else:
            frame = getattr(pd, reader)(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - a damaged file is one line, never a traceback
        problems.append(f"examples: the artifact is not readable ({type(exc).__name__})")
        return None
    return frame


def _bytes(path: Path, uri: str) -> bytes | None:
    """The artifact's file, found in the session (folder or zip) by its path below ``data/``: the session
    may have moved since ClearML wrote the absolute ``uri``."""
    parts = PurePosixPath(uri.removeprefix("file://")).parts
    if "data" not in parts:
        return None
    inside = PurePosixPath(*parts[len(parts) - parts[::-1].index("data") - 1 :])
    if path.is_dir():
        file = path.joinpath(*inside.parts)
        return file.read_bytes() if file.is_file() and not file.is_symlink() else None
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(str(inside)):
                return archive.read(name)
    return None
