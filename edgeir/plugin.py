"""Everything a plugin author imports from edgeir, in one place.

A method plugin is one light module exposing ``SPEC = MethodSpec(...)`` and declared as an entry point
of ``edgeir.plugins`` **under the same name as** ``SPEC.name`` (discovery refuses a mismatch)::

    from edgeir.plugin import ExportRecipe, IOContract, MethodSpec, Program, TensorSpec, TileSpec, Variant

The contracts (:mod:`edgeir.method`, :mod:`edgeir.recipe`) and the shipped-weights table import no
PyTorch, so importing this module keeps ``edgeir list`` fast; the checkpoint helpers, which need
PyTorch, are resolved on first use. ``edgeir check-plugin NAME`` (or ``pytest --pyargs edgeir.testing
--method NAME``) runs the conformance suite on a plugin. See ``docs/plugin-tutorial.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgeir.errors import CheckpointError, UsageError
from edgeir.method import IOContract, MethodSpec, Variant
from edgeir.recipe import (
    DynamicSize,
    ExportRecipe,
    Program,
    QuantHints,
    RecipeOptions,
    Rewrite,
    TensorSpec,
    TileSpec,
    TLCOptions,
)
from edgeir.weights.shipped import ShippedWeights, weights_file, weights_table

#: Checkpoint helpers (they import PyTorch): what ``convert_checkpoint`` and a plugin's own tests may use.
_LAZY = {
    "read_checkpoint": "edgeir.weights.checkpoint",
    "check_state_dict": "edgeir.weights.checkpoint",
    "load_into": "edgeir.weights.checkpoint",
    "state_dict_sha256": "edgeir.weights.checkpoint",
}

__all__ = [
    "CheckpointError", "DynamicSize", "ExportRecipe", "IOContract", "MethodSpec", "Program", "QuantHints",
    "RecipeOptions", "Rewrite", "ShippedWeights", "TLCOptions", "TensorSpec", "TileSpec", "UsageError", "Variant",
    "weights_file", "weights_table", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeir.plugin' has no attribute {name!r}")
