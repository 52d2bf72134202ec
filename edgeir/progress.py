"""The one progress facility: bars on stderr when a person is watching, silent otherwise."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_enabled() -> bool:
    """Whether bars are shown: EDGEIR_PROGRESS=1 forces them, 0 hides them, and by default only a terminal
    on stderr gets them (a CI log is not a terminal; a bar redrawn there is hundreds of lines)."""
    enabled = os.environ.get("EDGEIR_PROGRESS", "auto")
    return enabled == "1" or (enabled == "auto" and sys.stderr.isatty())


def progress_bar(total: int | None = None, desc: str = "", **kwargs: Any):
    """A tqdm bar on stderr; hidden when stderr is not a terminal or EDGEIR_PROGRESS=0."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress_enabled(), file=sys.stderr, leave=False, **kwargs)
