"""Normalizations: ``layer_norm``, ``batch_norm``, ``instance_norm``, ``l2_norm``, ``local_response_norm``.

Definition followed: ``mil/ops/defs/iOS15/normalization.py``: ``epsilon`` is added to the (biased,
population) variance inside the square root: ``(x - mean) / sqrt(var + epsilon) * gamma + beta``.
"""

from __future__ import annotations

import torch

from edgeir.targets.coreml.mil.ops import kernel


def _channel(t: torch.Tensor, rank: int) -> torch.Tensor:
    return t.reshape([1, -1] + [1] * (rank - 2))


@kernel("layer_norm")
def layer_norm(a):
    """Normalise over ``axes`` (default all); ``gamma``/``beta`` shaped as ``x.shape[axes]``; epsilon
    default 1e-5 (iOS15/normalization.py, ``layer_norm``)."""
    x = a.tensor("x")
    axes = a.ints("axes")
    axes = list(range(x.dim())) if axes is None else [v % x.dim() for v in axes]
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    out = (x - mean) / torch.sqrt(var + a.value("epsilon", 1e-5))
    # gamma/beta have the shape of the normalised axes, which the definition requires to be the last ones.
    if a.has("gamma"):
        out = out * a.tensor("gamma")
    if a.has("beta"):
        out = out + a.tensor("beta")
    return out


@kernel("batch_norm")
def batch_norm(a):
    """Per channel (axis 1): ``(x - mean) / sqrt(variance + epsilon) * gamma + beta``, epsilon default 1e-5
    (iOS15/normalization.py, ``batch_norm``)."""
    x = a.tensor("x")
    rank = x.dim()
    out = (x - _channel(a.tensor("mean"), rank)) / torch.sqrt(_channel(a.tensor("variance"), rank)
                                                              + a.value("epsilon", 1e-5))
    if a.has("gamma"):
        out = out * _channel(a.tensor("gamma"), rank)
    if a.has("beta"):
        out = out + _channel(a.tensor("beta"), rank)
    return out


@kernel("instance_norm")
def instance_norm(a):
    """Per sample and channel over the spatial axes (2..), epsilon default 1e-5
    (iOS15/normalization.py, ``instance_norm``)."""
    x = a.tensor("x")
    axes = list(range(2, x.dim()))
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    out = (x - mean) / torch.sqrt(var + a.value("epsilon", 1e-5))
    if a.has("gamma"):
        out = out * _channel(a.tensor("gamma"), x.dim())
    if a.has("beta"):
        out = out + _channel(a.tensor("beta"), x.dim())
    return out


@kernel("l2_norm")
def l2_norm(a):
    """``x / sqrt(sum(x^2) + epsilon)`` over the last three axes (all but the batch axes), epsilon default
    1e-6 (iOS15/normalization.py, ``l2_norm``)."""
    x = a.tensor("x")
    axes = list(range(max(x.dim() - 3, 0), x.dim()))
    return x / torch.sqrt((x * x).sum(dim=axes, keepdim=True) + a.value("epsilon", 1e-6))


@kernel("local_response_norm")
def local_response_norm(a):
    """``x / (k + alpha / size * sum_{window over channels} x^2) ^ beta`` (iOS15/normalization.py,
    ``local_response_norm``; alpha 1e-4, beta 0.75, k 1 by default)."""
    x = a.tensor("x")
    size = int(a.value("size"))
    return torch.nn.functional.local_response_norm(x, size, alpha=a.value("alpha", 1e-4),
                                                   beta=a.value("beta", 0.75), k=a.value("k", 1.0))
