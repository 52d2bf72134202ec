"""Transposed (channel) attention: Restormer's MDTA core, shared by Restormer, AnyIR and DiffIR.

Per head, ``softmax(norm(q) norm(k)^T * temperature) v`` where the attention matrix is
``C/heads x C/heads``, built from statistics over every position of the map it is given: that is
what makes it a global operation, and what TLC (:mod:`edgeir.plugins.tlc`) restricts to windows.
No einops; reshapes stay at rank <= 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeir.plugins.tlc.ops import windowed

__all__ = ["TransposedAttention", "channel_attention", "qkv_attention", "windowed_qkv_attention"]


def channel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int,
                      temperature: torch.Tensor) -> torch.Tensor:
    """Transposed attention of ``(B, C, H, W)`` queries, keys and values; ``temperature`` is ``(heads, 1, 1)``."""
    b, c, h, w = q.shape
    q, k, v = (t.reshape(b, num_heads, c // num_heads, h * w) for t in (q, k, v))
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    attn = torch.softmax(q @ k.transpose(-2, -1) * temperature, dim=-1)
    return (attn @ v).reshape(b, c, h, w)


def qkv_attention(qkv: torch.Tensor, num_heads: int, temperature: torch.Tensor) -> torch.Tensor:
    """:func:`channel_attention` of a ``(B, 3C, H, W)`` map holding q, k and v one after the other."""
    q, k, v = qkv.chunk(3, dim=1)
    return channel_attention(q, k, v, num_heads, temperature)


def windowed_qkv_attention(qkv: torch.Tensor, num_heads: int, temperature: torch.Tensor,
                           kernel: tuple[int, int]) -> torch.Tensor:
    """TLC's local form of :func:`qkv_attention`: on each overlapping ``kernel`` window, averaged over overlaps.

    As the official ``LocalAttention`` (Chu et al., ECCV 2022); see :func:`edgeir.plugins.tlc.ops.windowed`.
    """
    return windowed(lambda part: qkv_attention(part, num_heads, temperature), qkv, kernel)


class TransposedAttention(nn.Module):
    """Multi-Dconv head Transposed Attention (MDTA; the official Restormer ``Attention``).

    ``project_out(attend(qkv_dwconv(qkv(x))))``: the 1x1 and depthwise 3x3 convolutions see the
    full map; :meth:`attend` is the global core, which a TLC subclass overrides.
    """

    def __init__(self, channels: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """Attention over the whole qkv map (global)."""
        return qkv_attention(qkv, self.num_heads, self.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.attend(self.qkv_dwconv(self.qkv(x))))
