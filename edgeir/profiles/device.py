"""The device a profile was measured on: this host, or a phone described by whoever measured it."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Device:
    """A device that ran an artifact.

    Attributes:
        id: Short stable name, used as the profile's file name (``profiles/<id>.json``) and in gate rules.
        chip: CPU or SoC model.
        cores: Logical CPU cores (0 when unknown).
        os: Operating system and version.
        kind: ``"host"`` (this machine, measured by ``edgeir profile``) or ``"target"`` (a phone or other
            device the artifact is meant for, imported).
    """

    id: str
    chip: str
    cores: int
    os: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        return cls(id=str(data["id"]), chip=str(data.get("chip", "unknown")), cores=int(data.get("cores", 0)),
                   os=str(data.get("os", "unknown")), kind=str(data.get("kind", "target")))


def slug(text: str) -> str:
    """Lower-case ``text`` with runs of anything but letters and digits turned into one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def cpu_model() -> str:
    """The CPU model name as the OS reports it (``/proc/cpuinfo`` on Linux)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def this_host() -> Device:
    """This machine: ``host-<cpu model>-<cores>c``, so profiles from different hosts do not overwrite each other."""
    chip = cpu_model()
    cores = os.cpu_count() or 0
    system = f"{platform.system()} {platform.release()}"
    return Device(id=f"host-{slug(chip)}-{cores}c", chip=chip, cores=cores, os=system, kind="host")
