"""Profiles: immutable latency and memory measurements of one artifact on one device.

A profile file, ``BUNDLE/profiles/<device-id>.json``, holds every measurement of that bundle on that
device (one per program and thread count), each with its raw samples and the settings that produced
it. Summaries (min/p50/p90/max) are derived from the samples; reporting is elsewhere.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeir.bundle import write_json
from edgeir.errors import UsageError
from edgeir.profiles.device import Device

PROFILES_DIR = "profiles"
PROFILE_SCHEMA = "edgeir-profile/1"
MEASURED_ON = {"host": "this host (not the target device)", "target": "the target device"}


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples`` by linear interpolation (numpy's default)."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Measurement:
    """Latency samples of one program at one thread count, and what produced them.

    Attributes:
        program: Program (ExecuTorch method, ONNX file, Core ML function) that ran.
        input_shape: Shape of the (first) input.
        threads: Threads the runtime was asked to use (0: the runtime's default).
        warmup: Runs before the timed ones (not in ``samples_ms``).
        samples_ms: Wall time of each timed run, in milliseconds, in order.
        peak_memory_mb: Peak memory in MiB as defined by ``memory_note`` (None when not measured).
        memory_note: What ``peak_memory_mb`` measures.
        notes: Anything a reader must know to interpret the numbers (a setting the runtime ignored...).
        ops: Per-operator (or per-delegate) rows, slowest first: ``name``, ``op``, ``calls``, ``total_ms``,
            ``mean_ms``, ``share`` (of the summed op time).
    """

    program: str
    input_shape: tuple[int, ...]
    threads: int
    warmup: int
    samples_ms: tuple[float, ...]
    peak_memory_mb: float | None = None
    memory_note: str = ""
    notes: tuple[str, ...] = ()
    ops: tuple[dict[str, Any], ...] = ()

    def latency_ms(self) -> dict[str, float]:
        """min, p50, p90 and max of the samples."""
        samples = list(self.samples_ms)
        return {"min": min(samples), "p50": percentile(samples, 50), "p90": percentile(samples, 90),
                "max": max(samples)}

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program, "input_shape": list(self.input_shape), "threads": self.threads,
            "warmup": self.warmup, "runs": len(self.samples_ms),
            "latency_ms": {k: round(v, 4) for k, v in self.latency_ms().items()},
            "samples_ms": [round(s, 4) for s in self.samples_ms],
            "peak_memory_mb": None if self.peak_memory_mb is None else round(self.peak_memory_mb, 2),
            "memory_note": self.memory_note, "notes": list(self.notes), "ops": list(self.ops),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(program=data["program"], input_shape=tuple(data.get("input_shape", ())),
                   threads=int(data.get("threads", 0)), warmup=int(data.get("warmup", 0)),
                   samples_ms=tuple(float(s) for s in data["samples_ms"]),
                   peak_memory_mb=data.get("peak_memory_mb"), memory_note=data.get("memory_note", ""),
                   notes=tuple(data.get("notes", ())), ops=tuple(data.get("ops", ())))


@dataclass(frozen=True)
class Profile:
    """Every measurement of one bundle on one device.

    Attributes:
        bundle: Bundle directory name.
        device: Where it ran; ``device.kind`` says whether that is the target device or this host.
        runtime: Runtime name and version (and anything else that identifies it).
        artifact_sha256: sha256 of each artifact file that ran, as in the bundle's manifest.
        source: How the profile was made: ``edgeir profile`` or the imported file's format.
        created: ISO time stamp.
        measurements: One per program and thread count.
        not_run: Why nothing was measured (e.g. Core ML on Linux); empty when measured.
        artifact_digest: The bundle's artifact digest (:func:`edgeir.integrity.artifact_digest`) when it
            was measured or imported; ``gate`` refuses the profile once the bundle's differs.
    """

    bundle: str
    device: Device
    runtime: dict[str, str]
    artifact_sha256: dict[str, str]
    source: str
    created: str
    measurements: tuple[Measurement, ...] = ()
    not_run: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    artifact_digest: str = ""

    @property
    def measured_on(self) -> str:
        """A sentence: the target device or this host."""
        return MEASURED_ON.get(self.device.kind, self.device.kind)

    def measurement(self, program: str | None = None, threads: int | None = None) -> Measurement | None:
        """The measurement of ``program`` (first when None) at ``threads`` (the fewest when None)."""
        rows = [m for m in self.measurements if program is None or m.program == program]
        if threads is not None:
            rows = [m for m in rows if m.threads == threads]
        return min(rows, key=lambda m: m.threads) if rows else None

    def to_json(self) -> dict[str, Any]:
        data = {
            "schema": PROFILE_SCHEMA, "bundle": self.bundle, "measured_on": self.device.kind,
            "measured_on_text": self.measured_on, "device": self.device.to_json(), "runtime": self.runtime,
            "artifact_sha256": self.artifact_sha256, "source": self.source, "created": self.created,
        }
        if self.artifact_digest:
            data["artifact_digest"] = self.artifact_digest
        if self.not_run:
            data["not_run"] = self.not_run
        data.update(self.extra)
        data["measurements"] = [m.to_json() for m in self.measurements]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        known = {"schema", "bundle", "measured_on", "measured_on_text", "device", "runtime", "artifact_sha256",
                 "source", "created", "not_run", "measurements", "artifact_digest"}
        return cls(bundle=data["bundle"], device=Device.from_json(data["device"]), runtime=dict(data["runtime"]),
                   artifact_sha256=dict(data["artifact_sha256"]), source=data.get("source", ""),
                   created=data.get("created", ""),
                   measurements=tuple(Measurement.from_json(m) for m in data.get("measurements", ())),
                   not_run=data.get("not_run", ""), extra={k: v for k, v in data.items() if k not in known},
                   artifact_digest=str(data.get("artifact_digest", "")))

    def save(self, bundle_path: Path) -> Path:
        """Write to ``bundle_path/profiles/<device id>.json`` (replacing an earlier profile of that device)."""
        directory = Path(bundle_path) / PROFILES_DIR
        directory.mkdir(exist_ok=True)
        path = directory / f"{self.device.id}.json"
        write_json(path, self.to_json())
        return path


def load_profile(path: str | Path) -> Profile:
    """Read one profile file.

    Raises:
        UsageError: if the file is unreadable or not an edgeir profile.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read profile {path}: {exc}") from exc
    if data.get("schema") != PROFILE_SCHEMA:
        raise UsageError(f"{path} is not an edgeir profile (schema {data.get('schema')!r}, want {PROFILE_SCHEMA})")
    return Profile.from_json(data)


def bundle_profiles(bundle_path: str | Path) -> dict[str, Profile]:
    """Profiles stored in a bundle, by device id."""
    directory = Path(bundle_path) / PROFILES_DIR
    if not directory.is_dir():
        return {}
    profiles = {}
    for path in sorted(directory.glob("*.json")):
        profile = load_profile(path)
        profiles[profile.device.id] = profile
    return profiles
