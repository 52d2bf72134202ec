"""The manifest of a bundle as one typed value: built once by the export pipeline, written once.

Readers get the JSON form through :class:`edgeir.bundle.Bundle` (``bundle.manifest``); this type fixes
what export writes and in which order, so a field cannot be added in one place and forgotten in another.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edgeir import __version__
from edgeir.bundle import SCHEMA_VERSION


def toolchain(target_versions: dict[str, str]) -> dict[str, str]:
    """Python, torch and the target's own packages, as recorded in every manifest."""
    from edgeir.target import package_version

    return {"python": platform.python_version(), "torch": package_version("torch"), **target_versions}


@dataclass(frozen=True)
class Manifest:
    """Everything an app and edgeir's later commands need to know about one exported artifact.

    Attributes:
        method, paper, variant, task: What was exported (the plugin's names).
        target, backend, quant: Where to, and at which precision or quantization scheme.
        io: The method's I/O contract (``IOContract.to_json``).
        params: Parameter count of the first program's module.
        recipe: Programs with their I/O specs, tiling and rewrites (``ExportRecipe.to_json``).
        rewrites_applied: One record per (program, rewrite) with the output change it caused.
        weights: Provenance of the weights (``WeightsInfo.to_json``; file name and sha256, no local path).
        target_details: What the target reports (``ExportResult.to_json``: delegation, dynamic H/W, ...).
        files: sha256 of every artifact file, relative to the bundle.
        toolchain: Versions of Python, torch and the target's packages.
        quantization: The quantize stage's record (integer schemes only).
        recipe_options: Options the recipe was built with that ``verify`` must rebuild it with.
        exits: Early-exit programs with their costs (``--exits`` bundles only).
        export_check: The artifact against the eager model on each program's example input, or why not run.
        stage_seconds: Wall time of each export stage.
    """

    method: str
    paper: str
    variant: str
    task: str
    target: str
    backend: str
    quant: str
    io: dict[str, Any]
    params: int
    recipe: dict[str, Any]
    rewrites_applied: list[dict[str, Any]]
    weights: dict[str, Any]
    target_details: dict[str, Any]
    files: dict[str, str]
    toolchain: dict[str, str]
    quantization: dict[str, Any] | None = None
    recipe_options: dict[str, Any] | None = None
    exits: list[dict[str, Any]] | None = None
    export_check: dict[str, Any] = field(default_factory=lambda: {"status": "pending"})
    stage_seconds: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    edgeir_version: str = __version__
    host: dict[str, str] = field(default_factory=lambda: {"system": platform.system(),
                                                          "machine": platform.machine()})

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON (unset optional sections left out), in the order readers see it."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version, "created": self.created, "edgeir_version": self.edgeir_version,
            "toolchain": self.toolchain, "host": self.host,
            "method": self.method, "paper": self.paper, "variant": self.variant, "task": self.task,
            "target": self.target, "backend": self.backend, "quant": self.quant,
            "io": self.io, "params": self.params, "recipe": self.recipe, "rewrites_applied": self.rewrites_applied,
            "weights": self.weights, "target_details": self.target_details, "files": self.files,
        }
        for name in ("quantization", "recipe_options", "exits"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        data["export_check"] = self.export_check
        data["stage_seconds"] = self.stage_seconds
        return data
