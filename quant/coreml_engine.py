"""Core ML weight compression: int8 per-channel linear weights and 4-bit k-means palettes.

The engine acts on the converted ML Program (``post_export``): coremltools' post-training
compression (``coremltools.optimize.coreml``) replaces each large weight by a ``constexpr_*``
op that the Core ML runtime expands at load time; compute stays float16.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from edgeir.quantization.scheme import QuantEngine

#: Weights with fewer elements stay float16 (biases, norms): compressing them saves nothing.
WEIGHT_THRESHOLD = 256


class CoreMLCompressionEngine(QuantEngine):
    """``int8-weights`` (linear, symmetric, per output channel) and ``w4`` (k-means, 16 entries per tensor)."""

    name = "coremltools-optimize"
    schemes = ("int8-weights", "w4")
    post_export = True

    def availability(self) -> tuple[bool, str]:
        ok = importlib.util.find_spec("coremltools") is not None
        return ok, "" if ok else "the coremltools package is not installed"

    def compress(self, artifact: Any, scheme: str) -> Any:
        """Compress the weights of an ``MLModel`` (mlprogram) for ``scheme``; returns the new model."""
        from coremltools.optimize import coreml as cto

        if scheme == "int8-weights":
            op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                             weight_threshold=WEIGHT_THRESHOLD)
            return cto.linear_quantize_weights(artifact, cto.OptimizationConfig(global_config=op))
        if scheme == "w4":
            op = cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_tensor",
                                        weight_threshold=WEIGHT_THRESHOLD)
            return cto.palettize_weights(artifact, cto.OptimizationConfig(global_config=op))
        raise ValueError(f"engine {self.name} implements {', '.join(self.schemes)}, not {scheme}")


def compressed_op_counts(artifact: Any) -> dict[str, int]:
    """Counts of the ``constexpr_*`` ops (compressed weights) in every function of an ML Program."""
    counts: dict[str, int] = {}
    for function in artifact.get_spec().mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                if op.type.startswith("constexpr_"):
                    counts[op.type] = counts.get(op.type, 0) + 1
    return dict(sorted(counts.items()))


ENGINE = CoreMLCompressionEngine()
