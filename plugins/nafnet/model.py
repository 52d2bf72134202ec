"""NAFNet, written for export, with the official state-dict names.

Reference: L. Chen, X. Chu, X. Zhang, J. Sun, "Simple Baselines for Image Restoration", ECCV 2022
(github.com/megvii-research/NAFNet, ``basicsr/models/archs/NAFNet_arch.py``). An independent
implementation: parameter names and shapes equal the official ones, so released checkpoints load
strictly. The official LayerNorm2d (a custom autograd Function) is the shared
:class:`~edgeir.plugins._layers.norm.ChannelLayerNorm` with eps 1e-6, in plain ops (keys ``weight``, ``bias``).

Shape contract: any H and W. As the official model, the input is zero-padded at the bottom and
right to a multiple of 16 (four 2x downsamplings) and the output cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeir.plugins._layers.norm import ChannelLayerNorm

__all__ = ["NAFBlock", "NAFNet", "NAFNetConfig", "SimplifiedChannelAttention"]

_LAYERNORM_EPS = 1e-6


@dataclass(frozen=True)
class NAFNetConfig:
    """Hyper-parameters of :class:`NAFNet` (the official constructor's arguments).

    Attributes:
        img_channel: Image channels in and out.
        width: Channels at level 1 (doubled at each downsampling).
        middle_blk_num: Blocks at the lowest resolution.
        enc_blk_nums: Blocks per encoder level.
        dec_blk_nums: Blocks per decoder level.
    """

    img_channel: int = 3
    width: int = 32
    middle_blk_num: int = 1
    enc_blk_nums: tuple[int, ...] = (1, 1, 1, 28)
    dec_blk_nums: tuple[int, ...] = (1, 1, 1, 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "enc_blk_nums", tuple(self.enc_blk_nums))
        object.__setattr__(self, "dec_blk_nums", tuple(self.dec_blk_nums))
        if len(self.enc_blk_nums) != len(self.dec_blk_nums):
            raise ValueError(f"encoder and decoder need as many levels: {self.enc_blk_nums} vs {self.dec_blk_nums}")
        if self.width < 1 or self.img_channel < 1:
            raise ValueError("width and img_channel must be positive")

    @property
    def padder_size(self) -> int:
        """H and W are padded to a multiple of this: 2 ** levels."""
        return 2 ** len(self.enc_blk_nums)


class SimpleGate(nn.Module):
    """Split channels in halves and multiply them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class SimplifiedChannelAttention(nn.Sequential):
    """``sca``: global average pool then a 1x1 conv (keys ``1.weight``, ``1.bias`` as official).

    The global pool is NAFNet's only global operation; TLC replaces index 0 by a local mean.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1))


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: LN, 1x1, dw3x3, SimpleGate, SCA, 1x1; LN, 1x1, gate, 1x1."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        dw = c * dw_expand
        ffn = c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = SimplifiedChannelAttention(dw // 2)
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = ChannelLayerNorm(c, eps=_LAYERNORM_EPS)
        self.norm2 = ChannelLayerNorm(c, eps=_LAYERNORM_EPS)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet (Chen et al., ECCV 2022): a U-Net of NAFBlocks with additive skips.

    Args:
        config: Hyper-parameters; default the GoPro width-32 deblurring model (17.11M parameters).
    """

    def __init__(self, config: NAFNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NAFNetConfig()
        self.intro = nn.Conv2d(config.img_channel, config.width, 3, padding=1)
        self.ending = nn.Conv2d(config.width, config.img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        chan = config.width
        for num in config.enc_blk_nums:
            self.encoders.append(nn.Sequential(*(NAFBlock(chan) for _ in range(num))))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*(NAFBlock(chan) for _ in range(config.middle_blk_num)))
        for num in config.dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(chan) for _ in range(num))))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        height, width = inp.shape[-2:]
        size = self.config.padder_size
        pad_h, pad_w = (size - height % size) % size, (size - width % size) % size
        if pad_h or pad_w:
            inp = F.pad(inp, (0, pad_w, 0, pad_h))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        if pad_h or pad_w:  # a no-op crop would export as an ``alias`` node, which Core ML rejects
            x = x[:, :, :height, :width]
        return x
