"""The Restormer-family U-Net pieces (Restormer, AnyIR, DiffIR's DIRformer), with the official key names."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Downsample", "PatchEmbed", "PreNormBlock", "Upsample"]


class PreNormBlock(nn.Module):
    """``x + attn(norm1(x), *condition)`` then ``x + ffn(norm2(x), *condition)`` (keys ``norm1``, ``attn``, ...).

    ``condition`` is what the attention and the FFN take besides the features (DiffIR's IPR); none
    for Restormer and AnyIR. Methods subclass it to build their own four modules.
    """

    def __init__(self, norm1: nn.Module, attn: nn.Module, norm2: nn.Module, ffn: nn.Module) -> None:
        super().__init__()
        self.norm1 = norm1
        self.attn = attn
        self.norm2 = norm2
        self.ffn = ffn

    def forward(self, x: torch.Tensor, *condition: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), *condition)
        return x + self.ffn(self.norm2(x), *condition)


class PatchEmbed(nn.Module):
    """3x3 conv from image to features, held as ``proj`` (the official ``OverlapPatchEmbed``)."""

    def __init__(self, in_channels: int, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Half the size, twice the channels: bias-free 3x3 conv to ``C/2``, PixelUnshuffle(2) (keys ``body.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Twice the size, half the channels: bias-free 3x3 conv to ``2C``, PixelShuffle(2) (keys ``body.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
