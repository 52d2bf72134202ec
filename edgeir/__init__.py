"""edgeir: take image-restoration networks to phones.

The public API mirrors the command line::

    import edgeir
    model = edgeir.build_model("anyir", variant="tiny", task="denoise25")
    bundle = edgeir.export("anyir", target="onnx", variant="tiny")
    report = edgeir.verify(bundle.path)

``import edgeir`` stays light: PyTorch and the export SDKs load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "build_model": "edgeir.weights.build",
    "export": "edgeir.pipeline.export",
    "verify": "edgeir.runtime.verify",
    "run": "edgeir.runtime.restore",
    "environment": "edgeir.hostinfo",
    "methods": "edgeir.discovery",
    "targets": "edgeir.discovery",
    "quant_schemes": "edgeir.discovery",
    "Bundle": "edgeir.bundle",
    "MethodSpec": "edgeir.method",
    "IOContract": "edgeir.method",
    "Variant": "edgeir.method",
    "Target": "edgeir.target",
    "ExportRecipe": "edgeir.recipe",
    # The plugin author's surface (see edgeir.plugin, which re-exports the same names).
    "Program": "edgeir.recipe",
    "TensorSpec": "edgeir.recipe",
    "TileSpec": "edgeir.recipe",
    "DynamicSize": "edgeir.recipe",
    "RecipeOptions": "edgeir.recipe",
    "TLCOptions": "edgeir.recipe",
    "Rewrite": "edgeir.recipe",
    "QuantHints": "edgeir.recipe",
    "ShippedWeights": "edgeir.weights.shipped",
    "weights_table": "edgeir.weights.shipped",
    "weights_file": "edgeir.weights.shipped",
    "read_checkpoint": "edgeir.weights.checkpoint",
    "check_state_dict": "edgeir.weights.checkpoint",
    "load_into": "edgeir.weights.checkpoint",
    "state_dict_sha256": "edgeir.weights.checkpoint",
    "UsageError": "edgeir.errors",
    "CheckpointError": "edgeir.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeir' has no attribute {name!r}")
