"""Weights a plugin ships: small models edgeir trained itself, used when no ``--weights`` is given.

Each plugin declares its own files in ``MethodSpec.weights`` (a tuple of :class:`ShippedWeights`, usually
built with :func:`weights_table` from the files beside the plugin module), the way torchvision's model
builders carry their weights enums. Every file carries its provenance in the safetensors header (key
``edgeir_provenance``, a JSON object: the script and command that trained it, seed, steps, data,
evaluation PSNR of the model and of the degraded input). ``bench/train_default_weights.py`` writes them
reproducibly.

``--weights random`` (:data:`RANDOM`) asks for the seeded random initialisation explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

RANDOM = "random"
PROVENANCE_KEY = "edgeir_provenance"
SOURCE = "edgeir-default"
WEIGHTS_FOLDER = "weights"


@dataclass(frozen=True)
class ShippedWeights:
    """One weights file a plugin ships for a (variant, task), with the provenance its header records."""

    variant: str
    task: str
    path: Path

    @cached_property
    def provenance(self) -> dict[str, Any]:
        """How the file was trained and what it scores (empty if the header says nothing)."""
        return read_provenance(self.path)


def weights_file(plugin_file: str | Path, variant: str, task: str) -> Path:
    """Where a plugin keeps the weights of one (variant, task): ``weights/<variant>-<task>.safetensors``
    beside the plugin module ``plugin_file`` (pass ``__file__``)."""
    return Path(plugin_file).resolve().parent / WEIGHTS_FOLDER / f"{variant}-{task}.safetensors"


def weights_table(plugin_file: str | Path, *pairs: tuple[str, str]) -> tuple[ShippedWeights, ...]:
    """The ``MethodSpec.weights`` table of a plugin that ships files for the (variant, task) ``pairs``."""
    return tuple(ShippedWeights(variant, task, weights_file(plugin_file, variant, task)) for variant, task in pairs)


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance JSON of a weights file's header (empty if it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    text = metadata.get(PROVENANCE_KEY)
    return json.loads(text) if text else {}


def is_random_request(weights: object) -> bool:
    """Whether ``weights`` asks for the random initialisation explicitly (``"random"``)."""
    return isinstance(weights, str) and weights == RANDOM
