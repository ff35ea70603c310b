"""The decorated call's type is what it returns at run time, for every form (mypy --strict on a typed file)."""

from __future__ import annotations

import os
import subprocess
import sys

from support import FOLDER, ROOT


def test_mypy_types_every_form_as_it_runs() -> None:
    """mypy finds every ``assert_type`` of tests/support/typed_evaluations.py right (an async generator
    annotated AsyncIterator is awaited to an EvalResult), and the file's checks pass when run."""
    done = subprocess.run(
        # Errors in tracked's own modules are the project's mypy run's business (torch, an optional import,
        # is not installed by the test extra): only the typed example file is judged here.
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         str(FOLDER / "typed_evaluations.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    from support.typed_evaluations import check

    check()
