"""Weights edgeir ships: small models it trained itself, used when no ``--weights`` is given.

Files live in the package (``edgeir/weights/<method>-<variant>-<task>.safetensors``) and carry
their provenance in the safetensors header (key ``edgeir_provenance``, a JSON object: the script
and command that trained them, seed, steps, data, evaluation PSNR of the model and of the
degraded input). ``bench/train_default_weights.py`` writes them reproducibly.

``--weights random`` (:data:`RANDOM`) asks for the seeded random initialisation explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RANDOM = "random"
PROVENANCE_KEY = "edgeir_provenance"
SOURCE = "edgeir-default"


def weights_dir() -> Path:
    """Directory of the shipped weights inside the installed package."""
    return Path(__file__).resolve().parent / "weights"


def weights_filename(method: str, variant: str, task: str) -> str:
    """File name of the shipped weights of one (method, variant, task)."""
    return f"{method}-{variant}-{task}.safetensors"


@dataclass(frozen=True)
class ShippedWeights:
    """One shipped weights file and what its header says about it."""

    path: Path
    provenance: dict[str, Any]


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance JSON of a weights file's header (empty if it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    text = metadata.get(PROVENANCE_KEY)
    return json.loads(text) if text else {}


def shipped_weights(method: str, variant: str, task: str) -> ShippedWeights | None:
    """The weights edgeir ships for this (method, variant, task), or None when it has none."""
    path = weights_dir() / weights_filename(method, variant, task)
    if not path.is_file():
        return None
    return ShippedWeights(path, read_provenance(path))


def is_random_request(weights: object) -> bool:
    """Whether ``weights`` asks for the random initialisation explicitly (``"random"``)."""
    return isinstance(weights, str) and weights == RANDOM
