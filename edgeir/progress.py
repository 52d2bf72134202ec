"""The one progress facility: bars on stderr when a person is watching, silent otherwise."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_bar(total: int | None = None, desc: str = "", **kwargs: Any):
    """A tqdm bar on stderr; hidden when stderr is not a terminal or EDGEIR_PROGRESS=0."""
    from tqdm.auto import tqdm

    enabled = os.environ.get("EDGEIR_PROGRESS", "auto")
    disable = enabled == "0" or (enabled == "auto" and not sys.stderr.isatty())
    return tqdm(total=total, desc=desc, disable=disable, file=sys.stderr, leave=False, **kwargs)
