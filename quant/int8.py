"""Integer schemes: static int8 (weights and activations) and weight-only compression.

The weight-only schemes compute in float16 with the decompressed weights, so against a reference that holds
those same weights the artifact must agree as an fp16 one does (40 dB); ``verify_threshold_db`` is their bar
against the float reference where that reference cannot be built (and the export check's).
"""

from __future__ import annotations

from edgeir.quantization.scheme import QuantScheme

INT8 = QuantScheme(
    name="int8",
    summary="static int8 weights (per channel) and activations (W8A8): PTQ, or QAT with --qat-steps N",
    verify_threshold_db=25.0,
    compute_dtype=None,
    fakequant_tolerance_db=35.0,
    trainable=True,
)

INT8_WEIGHTS = QuantScheme(
    name="int8-weights",
    summary="int8 weights (per channel), float16 compute; a size option (Core ML)",
    verify_threshold_db=35.0,
    compute_dtype="float16",
    reference_weights_threshold_db=40.0,
)

W4 = QuantScheme(
    name="w4",
    summary="4-bit weight palettes (16 k-means centroids per tensor), float16 compute; a size option (Core ML)",
    verify_threshold_db=20.0,
    compute_dtype="float16",
    reference_weights_threshold_db=40.0,
)
