"""``python -m tracked``: the same as the ``tracked`` command."""

from .cli import main

raise SystemExit(main())
