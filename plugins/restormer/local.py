"""Restormer-Local: Restormer with TLC's local transposed attention (Chu et al., ECCV 2022).

``LocalTransposedAttention`` computes ``qkv`` and its depthwise conv on the full map (so the conv
sees its true neighbours), runs the MDTA core on each overlapping window, averages where windows
overlap, then ``project_out`` on the full map: the official ``LocalAttention``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeir.plugins._layers.attention import TransposedAttention, windowed_qkv_attention
from edgeir.plugins.tlc.convert import localize, swap_class
from edgeir.recipe import TLCOptions

__all__ = ["LocalTransposedAttention", "RULES", "to_local"]


class LocalTransposedAttention(TransposedAttention):
    """MDTA over overlapping ``kernel`` windows (same parameters as :class:`TransposedAttention`)."""

    kernel: tuple[int, int]

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        return windowed_qkv_attention(qkv, self.num_heads, self.temperature, self.kernel)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"


def _local_attention(module: nn.Module, kernel: tuple[int, int]) -> nn.Module:
    return swap_class(module, LocalTransposedAttention, kernel=tuple(kernel))


RULES = {TransposedAttention: _local_attention}


def to_local(model: nn.Module, options: TLCOptions | None = None, in_channels: int = 3):
    """Restormer-Local of ``model`` and the manifest record (see :func:`~edgeir.plugins.tlc.convert.localize`)."""
    return localize(model, options or TLCOptions(), RULES, in_channels)
