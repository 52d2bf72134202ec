"""Flags several commands share (help text only: no heavy imports)."""

from __future__ import annotations

TRUST_KEY_HELP = ("ed25519 public key (PEM) the bundle's manifest must be signed with (export --sign-key); "
                  "without it the files and the manifest are still checked against their digests")
