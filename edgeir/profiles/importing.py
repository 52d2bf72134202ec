"""Import profiles measured on a device: ExecuTorch ETDump, ONNX Runtime profiling JSON, or the app JSON.

The app JSON (``edgeir-app-profile/1``, documented in ``docs/profiles.md``) is what any app can write
with a timer around its inference call. Every import is checked against the bundle: the sha256 the
device reports for the artifact it ran must be one of the bundle's artifact files, so numbers from an
older or different export cannot be attached to this one.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeir.bundle import Bundle
from edgeir.errors import UsageError
from edgeir.profiles.device import Device, slug
from edgeir.profiles.operators import read_etdump, read_ort_profile
from edgeir.profiles.profile import Measurement, Profile

APP_SCHEMA = "edgeir-app-profile/1"
FORMATS = ("etdump", "ort", "app")
APP_REQUIRED = ("format", "artifact_sha256", "device", "runtime", "samples_ms")


def detect_format(path: Path) -> str:
    """``etdump`` for a binary file, ``app`` for a JSON object with our schema, ``ort`` for a JSON event list."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "etdump"
    if isinstance(data, dict) and data.get("format") == APP_SCHEMA:
        return "app"
    return "ort"


def import_profile(
    bundle: str | Path | Bundle,
    file: str | Path,
    *,
    format: str | None = None,
    device: str | None = None,
    chip: str | None = None,
    os: str | None = None,
    sha256: str | None = None,
    program: str | None = None,
    threads: int | None = None,
    trust_key: str | Path | None = None,
) -> tuple[Profile, Path]:
    """Store a profile measured on a device as ``BUNDLE/profiles/<device>.json``.

    Args:
        bundle: The bundle the device ran.
        file: ETDump, ONNX Runtime profiling JSON, or app JSON.
        format: ``etdump``, ``ort`` or ``app`` (detected from the content when None).
        device: Device id (required for ETDump and ONNX Runtime files; the app JSON carries its own).
        chip: SoC / CPU model, for ETDump and ONNX Runtime files.
        os: Operating system and version, likewise.
        sha256: sha256 of the artifact file the device ran (required for ETDump and ONNX Runtime files).
        program: Program that ran (default: the bundle's first; the app JSON may name it).
        threads: Threads the device's runtime used, when known (0: its default).
        trust_key: ed25519 public key (PEM) the bundle must be signed with.

    Returns:
        The profile and the path it was written to.

    Raises:
        UsageError: for an unreadable file, a missing device id or sha256, or a sha256 that is not one of
            the bundle's artifact files.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    digest = bundle.verified(trust_key)
    file = Path(file)
    if not file.is_file():
        raise UsageError(f"no profile file {file}")
    format = format or detect_format(file)
    if format not in FORMATS:
        raise UsageError(f"unknown profile format '{format}'; formats: {', '.join(FORMATS)}")
    if format == "app":
        return _import_app(bundle, file, program, digest)
    if not device:
        raise UsageError(f"importing an {format} file needs --device (a name for "
                         "the phone, e.g. pixel8-tensor-g3)")
    if not sha256:
        raise UsageError(f"importing a {format} file needs --sha256: the sha256 of the artifact file the device ran "
                         "(so the numbers cannot be attached to another export)")
    matched = _check_sha256(bundle, sha256)
    entry = bundle.program(program)
    if format == "etdump":
        trace = read_etdump(file, entry["name"])
        runtime = {"name": "executorch", "version": "unknown (ETDump)"}
    else:
        trace = read_ort_profile(file)
        runtime = {"name": "onnxruntime", "version": "unknown (profiling JSON)"}
    measurement = Measurement(
        program=entry["name"], input_shape=tuple(entry["inputs"][0]["shape"]), threads=threads or 0, warmup=0,
        samples_ms=trace.runs_ms, memory_note="not in the imported file",
        notes=(f"imported from {file.name}: every run in the file is a sample (warm-up runs are not marked)",),
        ops=trace.ops)
    result = Profile(bundle=bundle.path.name,
                     device=Device(id=slug(device), chip=chip or "unknown", cores=0, os=os or "unknown", kind="target"),
                     runtime=runtime, artifact_sha256=matched, source=f"imported {format}: {file.name}",
                     created=datetime.now(timezone.utc).isoformat(timespec="seconds"), measurements=(measurement,),
                     artifact_digest=digest)
    return result, result.save(bundle.path)


def _check_sha256(bundle: Bundle, sha256: str) -> dict[str, str]:
    files = bundle.manifest.get("files", {})
    matched = {name: digest for name, digest in files.items() if digest == sha256.strip().lower()}
    if not matched:
        raise UsageError(f"the profiled artifact (sha256 {sha256[:12]}...) is not in bundle {bundle.path.name}: it "
                         "was measured on a different export; its files are "
                         + ", ".join(f"{name} {digest[:12]}..." for name, digest in files.items()))
    return matched


def _import_app(bundle: Bundle, file: Path, program: str | None, digest: str) -> tuple[Profile, Path]:
    try:
        data: dict[str, Any] = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read app profile {file}: {exc}") from exc
    missing = [key for key in APP_REQUIRED if key not in data]
    if missing:
        raise UsageError(f"app profile {file} lacks {', '.join(missing)} (see docs/profiles.md)")
    samples = data["samples_ms"]
    if not samples or not all(isinstance(s, (int, float)) and s >= 0 for s in samples):
        raise UsageError(f"app profile {file}: samples_ms must be a non-empty list of non-negative numbers")
    if "id" not in data["device"]:
        raise UsageError(f"app profile {file}: device has no 'id'")
    matched = _check_sha256(bundle, data["artifact_sha256"])
    entry = bundle.program(program or data.get("program"))
    device = Device.from_json({**data["device"], "id": slug(data["device"]["id"]), "kind": "target"})
    memory = data.get("peak_memory_mb")
    measurement = Measurement(
        program=entry["name"], input_shape=tuple(data.get("input_shape") or entry["inputs"][0]["shape"]),
        threads=int(data.get("threads", 0)), warmup=int(data.get("warmup", 0)),
        samples_ms=tuple(float(s) for s in samples), peak_memory_mb=memory,
        memory_note=data.get("memory_note", "as reported by the app" if memory is not None else "not reported"),
        notes=tuple(data.get("notes", ())))
    runtime = {str(k): str(v) for k, v in data["runtime"].items()}
    result = Profile(bundle=bundle.path.name, device=device, runtime=runtime, artifact_sha256=matched,
                     source=f"imported app JSON: {file.name}",
                     created=data.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     measurements=(measurement,), artifact_digest=digest)
    return result, result.save(bundle.path)
