"""``python -m tracked.cli``: the ``tracked`` command."""

from .main import main

raise SystemExit(main())
