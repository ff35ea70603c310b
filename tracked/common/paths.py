"""Where tracked keeps what is its own (not ClearML's): next to ClearML's cache.

``$CLEARML_CACHE_DIR/tracked-runs/`` (ClearML's default cache
``~/.clearml/cache`` when the variable is unset): runs saved locally when
ClearML failed, journals of runs reported to a server, the resume index.
"""

from __future__ import annotations

import os
from pathlib import Path


def tracked_root() -> Path:
    cache = os.environ.get("CLEARML_CACHE_DIR") or os.environ.get("TRAINS_CACHE_DIR") or "~/.clearml/cache"
    return Path(os.path.expandvars(os.path.expanduser(cache))) / "tracked-runs"
