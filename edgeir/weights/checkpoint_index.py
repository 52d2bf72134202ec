"""Where this machine keeps the checkpoints it exported from, outside every bundle.

A bundle records its checkpoint by file name and sha256 only (an app must not ship the build
machine's directory layout). So that ``edgeir verify`` on the machine that exported still finds the
file without ``--weights``, export remembers ``sha256 -> absolute path`` in a small JSON index in the
user's cache folder (``$EDGEIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeir``, else ``~/.cache/edgeir``).
Nothing in it is trusted: a path is used only while the file there still has that sha256.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

INDEX = "checkpoints.json"


def cache_dir() -> Path:
    """The folder of the index."""
    if os.environ.get("EDGEIR_CACHE_DIR"):
        return Path(os.environ["EDGEIR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgeir"


def _read() -> dict[str, str]:
    try:
        data = json.loads((cache_dir() / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember(sha256: str, path: str | Path) -> None:
    """Record that the checkpoint with ``sha256`` is at ``path`` (best effort: a read-only cache only logs)."""
    index = _read()
    index[sha256] = str(Path(path).resolve())
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{INDEX}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, folder / INDEX)
    except OSError as exc:
        log.info("could not record the checkpoint's location in %s: %s", folder, exc)


def find(sha256: str | None) -> Path | None:
    """The remembered checkpoint with ``sha256``, if it is still there with that content."""
    if not sha256:
        return None
    path = _read().get(sha256)
    if not path or not Path(path).is_file():
        return None
    from edgeir.weights.checkpoint import file_sha256

    return Path(path) if file_sha256(path) == sha256 else None
