"""What this host has: versions, compute devices, installed plugins."""

from __future__ import annotations

import platform
from typing import Any

from edgeir import __version__
from edgeir.discovery import methods, quant_schemes, targets
from edgeir.target import package_version

PACKAGES = ("torch", "executorch", "coremltools", "onnx", "onnxscript", "onnxruntime", "numpy", "scikit-image")


def environment() -> dict[str, Any]:
    """Versions, devices, and every plugin with its source (failed ones with their error)."""
    import torch

    from edgeir.runtime.reference import best_device

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    plugins = {}
    for group, discovered in (("methods", methods()), ("targets", targets()), ("quant", quant_schemes())):
        plugins[group] = {name: discovered.registry.source(name) for name in discovered.registry.names()}
        plugins[group].update({name: f"FAILED: {f.describe()}" for name, f in discovered.failures.items()})
    return {
        "edgeir": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "devices": devices,
        "reference_device": str(best_device()),
        "torch_threads": torch.get_num_threads(),
        "plugins": plugins,
    }
