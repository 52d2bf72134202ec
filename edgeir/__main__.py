"""``python -m edgeir``."""

from edgeir.cli import main

raise SystemExit(main())
