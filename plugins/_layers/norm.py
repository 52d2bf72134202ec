"""LayerNorm over the channel axis of an NCHW map, as Restormer, AnyIR, DiffIR and NAFNet use it."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ARITHMETIC", "BodyLayerNorm", "ChannelLayerNorm"]

#: How the normalisation is computed. ``"rsqrt"``: ``centred * rsqrt(mean(centred^2) + eps)``,
#: the form edgeir writes for export. ``"sqrt-divide"``: ``(x - mean) / sqrt(var(x) + eps)`` with
#: ``torch.var``, the releases' literal arithmetic. The two agree to float rounding, not bit for
#: bit, so a model keeps the one its outputs (and shipped weights) were pinned with.
ARITHMETIC = ("rsqrt", "sqrt-divide")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over dim 1 of ``(B, C, H, W)`` with biased variance (keys ``weight`` [+ ``bias``]).

    With ``bias``: ``(x - mean) / sqrt(var + eps) * w + b``. Without it, Restormer's BiasFree form:
    ``x / sqrt(var + eps) * w`` (the mean is subtracted for the variance only, not from ``x``).

    Args:
        channels: C.
        bias: Whether there is a bias (and the mean is subtracted from the output).
        eps: Added to the variance (1e-5 for the Restormer family, 1e-6 for NAFNet).
        arithmetic: One of :data:`ARITHMETIC`.
    """

    def __init__(self, channels: int, bias: bool = True, eps: float = 1e-5, arithmetic: str = "rsqrt") -> None:
        super().__init__()
        if arithmetic not in ARITHMETIC:
            raise ValueError(f"arithmetic must be one of {ARITHMETIC}, got {arithmetic!r}")
        self.eps = eps
        self.arithmetic = arithmetic
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    @property
    def centred(self) -> bool:
        """Whether the output has the mean subtracted (the with-bias form)."""
        return self.bias is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.reshape(1, -1, 1, 1)
        if self.arithmetic == "sqrt-divide":
            var = x.var(dim=1, keepdim=True, unbiased=False)
            if self.bias is None:
                return x / torch.sqrt(var + self.eps) * weight
            mean = x.mean(dim=1, keepdim=True)
            return (x - mean) / torch.sqrt(var + self.eps) * weight + self.bias.reshape(1, -1, 1, 1)
        centred = x - x.mean(dim=1, keepdim=True)
        var = centred.square().mean(dim=1, keepdim=True)
        y = (centred if self.bias is not None else x) * torch.rsqrt(var + self.eps) * weight
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, bias={self.bias is not None}, eps={self.eps}, arithmetic={self.arithmetic!r}"


class BodyLayerNorm(nn.Module):
    """:class:`ChannelLayerNorm` held as ``body`` (keys ``body.weight`` [+ ``body.bias``]).

    The official Restormer ``LayerNorm(dim, type)`` wraps ``WithBias_LayerNorm`` or
    ``BiasFree_LayerNorm`` this way, and AnyIR and DiffIR inherit it: their checkpoints name the
    parameters ``norm1.body.weight``. Arguments as :class:`ChannelLayerNorm`.
    """

    def __init__(self, channels: int, bias: bool = True, eps: float = 1e-5, arithmetic: str = "rsqrt") -> None:
        super().__init__()
        self.body = ChannelLayerNorm(channels, bias, eps, arithmetic)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
