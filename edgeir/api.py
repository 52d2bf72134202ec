"""Small public helpers that sit on top of the registries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def build_model(
    method: str,
    variant: str | None = None,
    task: str | None = None,
    weights: str | Path | None = None,
) -> nn.Module:
    """The eager (trainable) model of ``method``, in eval mode.

    Args:
        method: Registered method name.
        variant: Model variant (method default when None).
        task: Restoration task (method default when None).
        weights: Checkpoint to load strictly; None means random initialisation (a warning is logged).

    Raises:
        UnknownNameError: for an unknown method, variant or task, listing the valid ones.
        CheckpointError: if the weights do not fit.
    """
    from edgeir.reference import build_model_with_weights

    model, _ = build_model_with_weights(method, variant, task, weights)
    return model
