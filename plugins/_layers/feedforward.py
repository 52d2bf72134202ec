"""Restormer's Gated-Dconv Feed-forward Network (GDFN), shared by Restormer, AnyIR and DiffIR's DGFN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GatedFeedForward"]


class GatedFeedForward(nn.Module):
    """``project_out(gelu(a) * b)`` where ``a, b`` are the halves of ``dwconv(project_in(x))``.

    Keys as the official ``FeedForward``: ``project_in`` (1x1 to 2 x hidden), ``dwconv`` (depthwise
    3x3), ``project_out`` (1x1 back); hidden = ``int(channels * expansion)``.
    """

    def __init__(self, channels: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)
