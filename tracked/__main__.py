"""``python -m tracked``: the same as the ``tracked`` command."""

from .cli.main import main

raise SystemExit(main())
