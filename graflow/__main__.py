"""``python -m graflow`` is the ``graflow`` command."""

from graflow.cli import main

raise SystemExit(main())
