"""Integer schemes: static int8 (weights and activations) and weight-only compression."""

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
)

W4 = QuantScheme(
    name="w4",
    summary="4-bit weight palettes (16 k-means centroids per tensor), float16 compute; a size option (Core ML)",
    verify_threshold_db=20.0,
    compute_dtype="float16",
)
