"""AnyIR's Test-time Local Converter form (TLC, Chu et al., ECCV 2022), for ``edgeir export --tlc``.

AnyIR has two global operations per block: the transposed (channel) attention on the even
channels, and the per-channel spatial mean and standard deviation that drive the GatedDA gate.
Their local forms, with the windows TLC derives from the training crop:

* attention: ``qkv`` and its depthwise conv on the full map, the attention core on each
  overlapping window, outputs averaged over overlaps (as the official Restormer ``LocalAttention``);
* GatedDA statistics: local mean and local (biased) variance with a replicated border (as the
  official ``LocalInstanceNorm2d``).

The parameters and their names are unchanged, so every AnyIR checkpoint loads into the local model.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeir.plugins._layers.attention import windowed_qkv_attention
from edgeir.plugins.tlc.convert import localize, swap_class
from edgeir.plugins.tlc.ops import local_mean, local_variance
from edgeir.recipe import TLCOptions

from .model import DualPathAttention, GatedDegradationAdaptation, tile_channels

__all__ = ["LocalDualPathAttention", "LocalGatedDA", "RULES", "to_local"]


class LocalDualPathAttention(DualPathAttention):
    """:class:`~.model.DualPathAttention` whose channel attention runs on overlapping windows."""

    kernel: tuple[int, int]

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        return windowed_qkv_attention(qkv, self.num_heads, self.temperature, self.kernel)


class LocalGatedDA(GatedDegradationAdaptation):
    """:class:`~.model.GatedDegradationAdaptation` with local mean / standard deviation for its gate."""

    kernel: tuple[int, int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_hat = self.norm(x)
        mu = local_mean(f_hat, self.kernel)
        sigma = torch.sqrt(local_variance(f_hat, self.kernel, mu) + self.eps)
        tau_adj = self.tau * torch.sigmoid(mu + sigma)
        gamma, beta, alpha = torch.split(self.W_exp(f_hat), self.split_sizes, dim=1)
        alpha = self.W_depth(alpha) * (1.0 + tile_channels(tau_adj, self.split_sizes[2]))
        gated = torch.sigmoid(gamma) * self.W_gate(torch.cat([beta, alpha], dim=1))
        return self.W_proj(gated + x)


RULES = {
    DualPathAttention: lambda m, k: swap_class(m, LocalDualPathAttention, kernel=tuple(k)),
    GatedDegradationAdaptation: lambda m, k: swap_class(m, LocalGatedDA, kernel=tuple(k)),
}


def to_local(model: nn.Module, options: TLCOptions | None = None, in_channels: int = 3):
    """AnyIR-Local of ``model`` and the manifest record (see :func:`~edgeir.plugins.tlc.convert.localize`)."""
    return localize(model, options or TLCOptions(), RULES, in_channels)
