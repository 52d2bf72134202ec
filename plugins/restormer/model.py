"""Restormer, written for export, with the official state-dict names.

Reference: S. W. Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022 (github.com/swz30/Restormer, ``basicsr/models/archs/restormer_arch.py``).
An independent implementation: module names and shapes equal the official network's, so the
released ``{'params': ...}`` checkpoints load strictly. No einops; reshapes stay at rank <= 4. The
LayerNorm, the transposed attention (MDTA) and the gated-dconv FFN (GDFN) are the shared blocks of
:mod:`edgeir.plugins._layers`, which AnyIR and DiffIR use too.

Shape contract: input ``(B, C, H, W)`` with H and W multiples of 8 (three PixelUnshuffle(2)
levels, no internal padding, as the official model); output has the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeir.plugins._layers.attention import TransposedAttention
from edgeir.plugins._layers.feedforward import GatedFeedForward
from edgeir.plugins._layers.norm import BodyLayerNorm
from edgeir.plugins._layers.unet import Downsample, PatchEmbed, PreNormBlock, Upsample

__all__ = ["Restormer", "RestormerConfig", "SIZE_MULTIPLE", "TransposedAttention", "config_for"]

SIZE_MULTIPLE = 8
_LAYERNORM_EPS = 1e-5
_LAYERNORM_KINDS = ("WithBias", "BiasFree")


@dataclass(frozen=True)
class RestormerConfig:
    """Hyper-parameters of :class:`Restormer`; defaults are the paper's (every released task).

    Attributes:
        in_channels: Image channels in (6 for the dual-pixel defocus model).
        out_channels: Image channels out.
        dim: Width of level 1 (levels 2, 3 and the latent use 2x, 4x, 8x).
        num_blocks: Transformer blocks in encoder levels 1-3 and the latent (decoder reuses 1-3).
        num_refinement_blocks: Blocks after decoder level 1.
        heads: Attention heads per level.
        ffn_expansion_factor: GDFN hidden width factor (hidden = int(C * factor)).
        bias: Whether the convolutions carry biases (released models: False).
        layernorm: "WithBias" (deblurring, deraining, defocus) or "BiasFree" (denoising).
        dual_pixel: Dual-pixel defocus model: a 1x1 skip conv instead of the image residual.
    """

    in_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    layernorm: str = "WithBias"
    dual_pixel: bool = False

    def __post_init__(self) -> None:
        if self.layernorm not in _LAYERNORM_KINDS:
            raise ValueError(f"layernorm must be one of {_LAYERNORM_KINDS}, got {self.layernorm!r}")
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1 or len(self.heads) != 4:
            raise ValueError(f"num_blocks and heads need 4 positive entries, got {self.num_blocks}, {self.heads}")
        for width, n_heads in zip((self.dim, 2 * self.dim, 4 * self.dim, 8 * self.dim), self.heads, strict=True):
            if width % n_heads:
                raise ValueError(f"width {width} is not divisible by {n_heads} heads")
        if not self.dual_pixel and self.in_channels != self.out_channels:
            raise ValueError("the image residual needs in_channels == out_channels (or dual_pixel=True)")


def config_for(dim: int, num_blocks, num_refinement_blocks: int, heads, task: str) -> RestormerConfig:
    """A config with the LayerNorm the official code uses for ``task`` (BiasFree for denoising)."""
    layernorm = "BiasFree" if task.startswith("denoise") else "WithBias"
    return RestormerConfig(dim=dim, num_blocks=tuple(num_blocks), num_refinement_blocks=num_refinement_blocks,
                           heads=tuple(heads), layernorm=layernorm)


def layer_norm(channels: int, kind: str) -> BodyLayerNorm:
    """Restormer's ``LayerNorm(dim, kind)``: WithBias, or BiasFree (scale only, mean kept); eps 1e-5."""
    return BodyLayerNorm(channels, bias=kind == "WithBias", eps=_LAYERNORM_EPS)


class TransformerBlock(PreNormBlock):
    """``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``: MDTA and GDFN."""

    def __init__(self, channels: int, num_heads: int, config: RestormerConfig) -> None:
        super().__init__(layer_norm(channels, config.layernorm), TransposedAttention(channels, num_heads, config.bias),
                         layer_norm(channels, config.layernorm),
                         GatedFeedForward(channels, config.ffn_expansion_factor, config.bias))


def _stage(channels: int, heads: int, depth: int, config: RestormerConfig) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(channels, heads, config) for _ in range(depth)))


class Restormer(nn.Module):
    """Restormer (Zamir et al., CVPR 2022): a 4-level U-Net of MDTA + GDFN transformer blocks.

    Args:
        config: Hyper-parameters; default the paper's (26.13M parameters with WithBias LayerNorm).
    """

    def __init__(self, config: RestormerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RestormerConfig()
        d = config.dim
        h1, h2, h3, h4 = config.heads
        n1, n2, n3, n4 = config.num_blocks
        self.patch_embed = PatchEmbed(config.in_channels, d, config.bias)
        self.encoder_level1 = _stage(d, h1, n1, config)
        self.down1_2 = Downsample(d)
        self.encoder_level2 = _stage(2 * d, h2, n2, config)
        self.down2_3 = Downsample(2 * d)
        self.encoder_level3 = _stage(4 * d, h3, n3, config)
        self.down3_4 = Downsample(4 * d)
        self.latent = _stage(8 * d, h4, n4, config)
        self.up4_3 = Upsample(8 * d)
        self.reduce_chan_level3 = nn.Conv2d(8 * d, 4 * d, 1, bias=config.bias)
        self.decoder_level3 = _stage(4 * d, h3, n3, config)
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, 1, bias=config.bias)
        self.decoder_level2 = _stage(2 * d, h2, n2, config)
        self.up2_1 = Upsample(2 * d)
        self.decoder_level1 = _stage(2 * d, h1, n1, config)
        self.refinement = _stage(2 * d, h1, config.num_refinement_blocks, config)
        if config.dual_pixel:
            self.skip_conv = nn.Conv2d(d, 2 * d, 1, bias=config.bias)
        self.output = nn.Conv2d(2 * d, config.out_channels, 3, padding=1, bias=config.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Restore ``image`` (B, C, H, W).

        Raises:
            ValueError: if H or W is not a multiple of 8 (the official model has the same limit).
        """
        height, width = image.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(f"Restormer needs H and W to be multiples of {SIZE_MULTIPLE}; got {height}x{width}. "
                             "Pad the image (reflect) and crop the output.")
        embedded = self.patch_embed(image)
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1)))
        dec1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1)))
        if self.config.dual_pixel:
            return self.output(dec1 + self.skip_conv(embedded))
        return self.output(dec1) + image
