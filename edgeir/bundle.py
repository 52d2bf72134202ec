"""Bundles: one directory per artifact with its manifest, written atomically.

A bundle is built in a private temporary directory beside its final place and renamed into place
only when complete, so an interrupted export leaves no half-written bundle and never destroys
the bundle it replaces until the new one is whole.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeir.errors import UsageError

MANIFEST = "manifest.json"
VERIFY = "verify.json"
SCHEMA_VERSION = 1


def bundle_name(method: str, variant: str, task: str, target: str, quant: str) -> str:
    """Directory name of a bundle: ``<method>-<variant>-<task>-<target>-<quant>``."""
    return f"{method}-{variant}-{task}-{target}-{quant}"


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``final`` when the block succeeds.

    On an exception (Ctrl-C included) the temporary directory is removed and ``final``, if it
    existed, is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{PARTIAL_PID}{os.getpid()}-", suffix=".partial",
                                dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; a bundle gets the permissions any new folder gets
    try:
        yield tmp
        backup = None
        if final.exists():
            backup = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, backup)
        os.replace(tmp, final)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


PARTIAL_PID = "pid"
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?:pid(?P<pid>\d+)-[^.]*\.partial|old-(?P<old>\d+))$")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove ``.NAME.pid<PID>-xxxx.partial/`` left beside ``final`` by an export that was killed (SIGKILL,
    power loss): the pid in the name is that export's, and it is no longer running. A ``.NAME.old-<PID>``
    backup of a dead export is put back as ``final`` when that is missing, else removed.

    Returns:
        The directories removed.
    """
    removed = []
    for path in Path(final).parent.glob(f".{glob.escape(Path(final).name)}.*"):
        match = _PARTIAL.match(path.name)
        if not match or match["name"] != Path(final).name or not path.is_dir():
            continue
        if _alive(int(match["pid"] or match["old"])):
            continue
        if match["old"] and not Path(final).exists():
            os.replace(path, final)  # killed between moving the old bundle aside and renaming the new one in
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (``edgeir.weights.checkpoint.file_sha256``, imported lazily: it loads torch)."""
    from edgeir.weights.checkpoint import file_sha256 as sha256

    return sha256(path)


def hash_files(root: Path, names: list[str]) -> dict[str, str]:
    """sha256 of every file under each name (a file or a directory such as an .mlpackage)."""
    hashes: dict[str, str] = {}
    for name in names:
        path = root / name
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in paths:
            hashes[file.relative_to(root).as_posix()] = file_sha256(file)
    return hashes


def render_json(data: dict[str, Any]) -> str:
    """The exact text :func:`write_json` writes (the integrity check compares manifest.json with it)."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_json(data))
    os.replace(tmp, path)


@dataclass(frozen=True)
class Bundle:
    """An exported artifact directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> Bundle:
        """Open the bundle at ``path``.

        Raises:
            UsageError: if ``path`` is not a bundle or its manifest is unreadable or of another schema.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise UsageError(f"{path} is not an edgeir bundle (no {MANIFEST})")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            raise UsageError(f"cannot read {manifest_path}: {exc}") from exc
        if not isinstance(manifest, dict):
            raise UsageError(f"{manifest_path} is not an edgeir manifest (a JSON object)")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise UsageError(
                f"{manifest_path} has schema version {manifest.get('schema_version')!r}; "
                f"this edgeir reads version {SCHEMA_VERSION}"
            )
        return cls(path, manifest)

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def programs(self) -> list[dict[str, Any]]:
        return self.manifest["recipe"]["programs"]

    @property
    def delegation(self) -> dict[str, dict[str, Any]]:
        """Per program, what the target's delegate took (``ExportResult.delegation``); empty for targets without
        delegates."""
        return self.manifest.get("target_details", {}).get("delegation", {})

    def dynamic_hw(self, program: str) -> bool:
        """Whether the artifact's ``program`` accepts any H/W (``ExportResult.dynamic_hw``)."""
        return bool(self.manifest.get("target_details", {}).get("dynamic_hw", {}).get(program, False))

    def program(self, name: str | None = None) -> dict[str, Any]:
        """The manifest entry of program ``name`` (the first one by default)."""
        if name is None:
            return self.programs[0]
        for program in self.programs:
            if program["name"] == name:
                return program
        names = ", ".join(p["name"] for p in self.programs)
        raise UsageError(f"bundle {self.path.name} has no program '{name}'; programs: {names}")

    def file(self, name: str) -> Path:
        """Path of an artifact file named in the manifest."""
        return self.path / name

    def check_integrity(self) -> list[str]:
        """Files whose sha256 differs from the manifest (or that are missing); ``["manifest.json"]`` when the
        manifest itself fails :func:`edgeir.integrity.check_manifest` (no ``files`` table, edited content)."""
        from edgeir.errors import IntegrityError
        from edgeir.integrity import check_manifest

        bad = [name for name, digest in sorted(self.manifest.get("files", {}).items())
               if not (self.path / name).is_file() or file_sha256(self.path / name) != digest]
        if not bad:
            try:
                check_manifest(self.path, self.manifest)
            except IntegrityError:
                bad = [MANIFEST]
        return bad

    def verified(self, trust_key: str | Path | None = None) -> str:
        """Run the integrity check (:func:`edgeir.integrity.check_bundle`); returns the artifact digest.

        Raises:
            IntegrityError: if a file, the manifest or its signature does not match.
        """
        from edgeir.integrity import check_bundle

        return check_bundle(self, trust_key=trust_key)
