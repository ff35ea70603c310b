"""The ``tracked`` command (``tracked.cli.main``): show, compare, report, merge and upload runs."""

from .main import main

__all__ = ["main"]
