"""Test support code, not tests: the stand-in ClearML server, polling, shared helpers, and the scripts tests run.

Imported as ``support`` (``from support.clearml_server import StandInServer``): in pytest's default "prepend"
import mode, loading ``tests/conftest.py`` puts ``tests/`` on ``sys.path``. The test folders have no
``__init__.py``, so each test module is imported by its file name alone (names must be unique across ``tests/``),
and a process pool started with "spawn" inherits ``sys.path``: its workers import ``support.pool_evaluations``
(and a test module's own functions) by those names too.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
"""``tests/support``: the scripts run as processes of their own (``spmd_evaluation.py``, ``ray_evaluation.py``)."""

ROOT = FOLDER.parents[1]
"""The repository: ``examples/``, and the ``PYTHONPATH`` of child processes that import tracked from the checkout."""
