"""Quantization / precision schemes: the contract the ``edgeir.quant`` entry points name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantScheme:
    """One way of storing and computing a model's numbers.

    Args:
        name: Scheme name used in flags and bundle names (``fp32``, ``fp16``, ``int8``).
        summary: One line for ``edgeir list``.
        verify_threshold_db: Lowest artifact-vs-reference PSNR that ``verify`` accepts for it.
        compute_dtype: Float dtype of weights and activations ("float32", "float16"); None for
            integer schemes.
    """

    name: str
    summary: str
    verify_threshold_db: float
    compute_dtype: str | None = "float32"
