"""The one integrity check every command runs before it reads a bundle.

A bundle is trusted only when

* its manifest has a ``files`` table naming every artifact file with its sha256, and each file on
  disk still has that sha256 (a missing ``files`` table is an error, never a skip); so do the
  fake-quant models of an int8 bundle (``quantization.fakequant_files``);
* the manifest's own content still has the digest recorded in it (``manifest_sha256``: sha256 over
  the canonical JSON of the manifest without that field and without ``signature``), so edits to the
  I/O scale, value range, recipe or weights provenance are caught like edits to the model;
* with a trusted public key, the manifest carries an ed25519 signature by the matching private key
  over that digest (``--sign-key`` at export, ``--trust-key`` everywhere else).

Evidence written about a bundle (``verify.json``, ``profiles/*.json``) records the *artifact
digest* it measured (sha256 over the ``files`` table); :func:`stale_reason` compares it with the
bundle's current one, so a gate never passes an artifact on numbers measured on another.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from edgeir.errors import IntegrityError, UsageError

DIGEST_FIELD = "manifest_sha256"
SIGNATURE_FIELD = "signature"
EVIDENCE_FIELD = "artifact_digest"
SIGNATURE_ALGORITHM = "ed25519"


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True).encode()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's content: canonical JSON without ``manifest_sha256`` and ``signature``."""
    content = {k: v for k, v in manifest.items() if k not in (DIGEST_FIELD, SIGNATURE_FIELD)}
    return hashlib.sha256(_canonical(content)).hexdigest()


def artifact_digest(files: dict[str, str]) -> str:
    """One sha256 naming the artifact: over the sorted ``name  sha256`` lines of the manifest's ``files``."""
    lines = "".join(f"{name}  {files[name]}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def load_private_key(path: str | Path):
    """An ed25519 private key from a PEM file (``openssl genpkey -algorithm ed25519``).

    Raises:
        UsageError: if the file is missing or not an unencrypted ed25519 private key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read_key(path)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"signing key {path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {path} is a {type(key).__name__}, not an ed25519 key")
    return key


def load_public_key(path: str | Path):
    """An ed25519 public key from a PEM file (``openssl pkey -in key.pem -pubout``).

    Raises:
        UsageError: if the file is missing or not an ed25519 public key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = _read_key(path)
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"trusted key {path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"trusted key {path} is a {type(key).__name__}, not an ed25519 key")
    return key


def _read_key(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror}") from exc


def _public_hex(public_key) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def seal(manifest: dict[str, Any], sign_key: str | Path | None = None) -> dict[str, Any]:
    """Record the manifest's digest in it (and, with ``sign_key``, an ed25519 signature over the digest).

    Mutates and returns ``manifest``; call it last, after every other field is final.
    """
    manifest.pop(SIGNATURE_FIELD, None)
    digest = manifest_digest(manifest)
    manifest[DIGEST_FIELD] = digest
    if sign_key is not None:
        key = load_private_key(sign_key)
        manifest[SIGNATURE_FIELD] = {
            "algorithm": SIGNATURE_ALGORITHM,
            "public_key": _public_hex(key.public_key()),
            "value": base64.b64encode(key.sign(bytes.fromhex(digest))).decode(),
        }
    return manifest


def check_manifest(path: Path, manifest: dict[str, Any], *, trust_key: str | Path | None = None) -> str:
    """Check a bundle directory against its manifest; returns the artifact digest.

    Args:
        path: The bundle directory.
        manifest: Its parsed ``manifest.json``.
        trust_key: ed25519 public key (PEM file) the manifest must be signed with; None checks no signature.

    Raises:
        IntegrityError: naming what does not match (one sentence).
    """
    name = Path(path).name
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IntegrityError(f"bundle {name}: manifest.json has no 'files' table (sha256 of each artifact file); "
                             "it cannot be checked, re-export it")
    recorded = manifest.get(DIGEST_FIELD)
    if not isinstance(recorded, str):
        raise IntegrityError(f"bundle {name}: manifest.json records no '{DIGEST_FIELD}' (digest of its own "
                             "content); it was not written by this edgeir's export, re-export it")
    actual = manifest_digest(manifest)
    if actual != recorded:
        raise IntegrityError(f"bundle {name}: manifest.json was modified after export (content digest {actual[:12]}, "
                             f"recorded {recorded[:12]})")
    from edgeir.weights.checkpoint import file_sha256

    changed, missing = [], []
    root = Path(path).resolve()
    # The fake-quant models verify compares an int8 artifact with are checked like the artifact.
    extra = (manifest.get("quantization") or {}).get("fakequant_files") or {}
    if not isinstance(extra, dict):
        raise IntegrityError(f"bundle {name}: manifest.json has a malformed 'quantization.fakequant_files' table")
    for relative, digest in sorted({**extra, **files}.items()):
        file = (root / relative).resolve()
        if not isinstance(digest, str) or root not in file.parents:
            raise IntegrityError(f"bundle {name}: manifest.json has a malformed 'files' entry {relative!r}")
        if not file.is_file():
            missing.append(relative)
        elif file_sha256(file) != digest:
            changed.append(relative)
    if missing:
        raise IntegrityError(f"bundle {name}: artifact file(s) missing: {', '.join(missing)}")
    if changed:
        raise IntegrityError(f"bundle {name} was modified after export: sha256 differs for {', '.join(changed)}")
    if trust_key is not None:
        _check_signature(name, manifest, recorded, trust_key)
    elif manifest.get(SIGNATURE_FIELD) is not None:
        _check_signature(name, manifest, recorded, None)
    return artifact_digest(files)


def _check_signature(name: str, manifest: dict[str, Any], digest: str, trust_key: str | Path | None) -> None:
    """The signature over ``digest`` verifies with ``trust_key``, or, without one, with the public key the
    signature names: a signed bundle whose signature was edited is refused even where no key is trusted
    (only ``trust_key`` tells who signed it)."""
    from cryptography.exceptions import InvalidSignature

    signature = manifest.get(SIGNATURE_FIELD)
    if not isinstance(signature, dict) or "value" not in signature:
        if trust_key is None:
            raise IntegrityError(f"bundle {name}: manifest.json has a malformed 'signature' entry")
        raise IntegrityError(f"bundle {name} is not signed, and --trust-key asks for a signature by {trust_key}")
    if signature.get("algorithm") != SIGNATURE_ALGORITHM:
        raise IntegrityError(f"bundle {name} is signed with {signature.get('algorithm')!r}, not {SIGNATURE_ALGORITHM}")
    try:
        if trust_key is not None:
            key = load_public_key(trust_key)
        else:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(signature.get("public_key")))
        key.verify(base64.b64decode(signature["value"], validate=True), bytes.fromhex(digest))
    except (InvalidSignature, ValueError, TypeError) as exc:
        if trust_key is None:
            raise IntegrityError(f"bundle {name}: its signature does not verify with the public key it names "
                                 "(the signature or the manifest was changed after export)") from exc
        raise IntegrityError(f"bundle {name}: signature does not verify with the trusted key {trust_key} "
                             "(signed by another key, or the manifest changed)") from exc


def check_bundle(bundle, *, trust_key: str | Path | None = None) -> str:
    """:func:`check_manifest` of an opened :class:`~edgeir.bundle.Bundle`, re-reading manifest.json from disk.

    The file is re-read so that a manifest edited since the bundle was opened is caught too.

    Raises:
        IntegrityError: if anything does not match.
    """
    from edgeir.bundle import MANIFEST, render_json

    name = Path(bundle.path).name
    manifest_path = Path(bundle.path) / MANIFEST
    try:
        raw = manifest_path.read_text()
        on_disk = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"bundle {name}: cannot read manifest.json ({exc})") from exc
    if not isinstance(on_disk, dict) or _canonical(on_disk) != _canonical(bundle.manifest):
        raise IntegrityError(f"bundle {name}: manifest.json changed since it was opened")
    digest = check_manifest(Path(bundle.path), on_disk, trust_key=trust_key)
    if raw != render_json(on_disk):  # same content, other bytes (whitespace, key order): still not what export wrote
        raise IntegrityError(f"bundle {name}: manifest.json was modified after export (its text is not the one "
                             "edgeir wrote, though its content digest matches)")
    return digest


def stale_reason(evidence: dict[str, Any], current: str, what: str) -> str | None:
    """Why evidence (``verify.json``, a profile) does not describe the current artifact, or None when it does.

    Args:
        evidence: The parsed evidence file.
        current: The bundle's artifact digest (from :func:`check_manifest`).
        what: How to name the evidence in the message ("verify.json", "profile pixel8").
    """
    measured = evidence.get(EVIDENCE_FIELD)
    if not isinstance(measured, str):
        return f"stale: {what} records no artifact digest (written by an older edgeir); measure again"
    if measured != current:
        return f"stale: {what} measured sha {measured[:12]}, artifact is {current[:12]}"
    return None
