"""Float precision schemes every target understands."""

from __future__ import annotations

from edgeir.quantization.scheme import QuantScheme

FP32 = QuantScheme(
    name="fp32",
    summary="float32 weights and activations; the artifact should match the reference to ~1e-6",
    verify_threshold_db=60.0,
    compute_dtype="float32",
)

FP16 = QuantScheme(
    name="fp16",
    summary="float16 weights and activations (Core ML default); expect 40-60 dB against the float32 reference",
    verify_threshold_db=40.0,
    compute_dtype="float16",
)
