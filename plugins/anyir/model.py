"""AnyIR, an all-in-one image-restoration U-Net, written for export.

Reference: B. Ren et al., "Any Image Restoration with Efficient Automatic Degradation Adaptation"
(AnyIR), arXiv:2504.14249, and the authors' release (github.com/Amazingren/AnyIR, ``net/anyir.py``).

This is an independent implementation of that architecture. Its ``state_dict()`` has exactly the
keys and shapes of the official network (without the Lightning ``net.`` prefix), so released
checkpoints load strictly. The eager model keeps the training-time behaviour of the reference:
BatchNorm inside the gated branch, global spatial statistics and the FFT frequency fusion. The
export-time transforms that make it phone friendly live in :mod:`rewrites`.

Shape contract: input ``(B, in_channels, H, W)`` with H and W multiples of 8 (three 2x
downsamplings, no internal padding); output has the same shape (global residual).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from edgeir.plugins._layers.attention import qkv_attention
from edgeir.plugins._layers.feedforward import GatedFeedForward
from edgeir.plugins._layers.norm import BodyLayerNorm
from edgeir.plugins._layers.unet import Downsample, PatchEmbed, PreNormBlock, Upsample

__all__ = [
    "AnyIR",
    "AnyIRConfig",
    "VARIANTS",
    "SIZE_MULTIPLE",
    "check_input_size",
    "level_widths",
]

#: H and W of the input must be multiples of this (three PixelUnshuffle(2) stages).
SIZE_MULTIPLE = 8

_LAYERNORM_KINDS = ("with_bias", "bias_free")
_LAYERNORM_EPS = 1e-5
_GATE_EXPANSION = 8 / 3
_GATE_KERNEL = 7
_GATE_STAT_EPS = 1e-6


@dataclass(frozen=True)
class AnyIRConfig:
    """Hyper-parameters of :class:`AnyIR` (defaults = the released checkpoints).

    Attributes:
        in_channels: Image channels in; must equal ``out_channels`` (global residual).
        out_channels: Image channels out.
        dim: Width of level 1; levels 2, 3 and the latent use 2x, 4x and 8x.
        num_blocks: Blocks in encoder levels 1-3 and the latent; the decoder reuses counts 1-3.
        num_refinement_blocks: Blocks after decoder level 1 (width ``2 * dim``).
        heads: Attention heads per level. Attention runs on half of each block's channels, so
            ``width / 2`` must be divisible by the level's head count.
        ffn_expansion_factor: Hidden width factor of the gated feed-forward network.
        bias: Whether the attention, feed-forward, channel-reduction and output convolutions
            carry a bias (the release uses ``False``).
        layernorm: ``"with_bias"`` (release) or ``"bias_free"`` channel LayerNorm.
    """

    in_channels: int = 3
    out_channels: int = 3
    dim: int = 28
    num_blocks: tuple[int, int, int, int] = (3, 5, 5, 7)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.0
    bias: bool = False
    layernorm: str = "with_bias"

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise list arguments to tuples through object.__setattr__.
        object.__setattr__(self, "num_blocks", tuple(int(n) for n in self.num_blocks))
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(
                f"in_channels and out_channels must be >= 1, got {self.in_channels}, {self.out_channels}"
            )
        if self.in_channels != self.out_channels:
            raise ValueError(
                "AnyIR adds the input image to its output, so in_channels must equal out_channels; "
                f"got {self.in_channels} and {self.out_channels}"
            )
        if self.dim < 2 or self.dim % 2:
            raise ValueError(
                f"dim must be an even integer >= 2 (blocks split channels in halves), got {self.dim}"
            )
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1:
            raise ValueError(f"num_blocks must be 4 integers >= 1, got {self.num_blocks}")
        if self.num_refinement_blocks < 0:
            raise ValueError(f"num_refinement_blocks must be >= 0, got {self.num_refinement_blocks}")
        if len(self.heads) != 4 or min(self.heads) < 1:
            raise ValueError(f"heads must be 4 integers >= 1, got {self.heads}")
        for level, (width, n_heads) in enumerate(
            zip(level_widths(self.dim), self.heads, strict=True), start=1
        ):
            if (width // 2) % n_heads:
                raise ValueError(
                    f"level {level}: attention runs on {width // 2} channels (half of {width}), "
                    f"which is not divisible by heads[{level - 1}]={n_heads}"
                )
        # Decoder level 1 and refinement run at 2*dim with heads[0]; dim/2 % heads[0] == 0 covers it.
        if self.ffn_expansion_factor <= 0 or int(self.dim * self.ffn_expansion_factor) < 1:
            raise ValueError(
                f"ffn_expansion_factor must give a hidden width >= 1, got {self.ffn_expansion_factor}"
            )
        if self.layernorm not in _LAYERNORM_KINDS:
            raise ValueError(f"layernorm must be one of {_LAYERNORM_KINDS}, got {self.layernorm!r}")


def level_widths(dim: int) -> tuple[int, int, int, int]:
    """Channel widths of encoder levels 1-3 and the latent for base width ``dim``."""
    return dim, 2 * dim, 4 * dim, 8 * dim


VARIANTS: dict[str, AnyIRConfig] = {
    # The released network (net/anyir.py defaults at the "model release" commit): 5,736,4xx params.
    "paper": AnyIRConfig(),
    # Phone-sized (1.21 M params): dim 16 instead of 28 and about half the blocks, so roughly a
    # quarter of the paper's compute at any resolution; 256x256 is comfortable on a phone CPU.
    "mobile": AnyIRConfig(dim=16, num_blocks=(2, 3, 3, 4), num_refinement_blocks=2, heads=(1, 2, 4, 8)),
    # Smoke-test size: exports and verifies in seconds at 64x64.
    "tiny": AnyIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2)),
}


def check_input_size(height: int, width: int) -> None:
    """Raise ``ValueError`` unless both spatial sizes are multiples of :data:`SIZE_MULTIPLE`."""
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"AnyIR needs H and W to be multiples of {SIZE_MULTIPLE} (three 2x downsamplings, "
            f"no internal padding); got {height}x{width}. Pad or crop the image first."
        )


def layer_norm(channels: int, kind: str) -> BodyLayerNorm:
    """AnyIR's channel LayerNorm (Restormer's): ``with_bias``, or ``bias_free`` (scale only, mean kept)."""
    return BodyLayerNorm(channels, bias=kind == "with_bias", eps=_LAYERNORM_EPS)


def gated_split_sizes(channels: int) -> tuple[int, int, int]:
    """Channel counts ``(gamma, beta, alpha)`` of the gated branch's expanded features."""
    hidden = int(round(_GATE_EXPANSION * channels))
    return channels, channels, hidden - 2 * channels


def tile_channels(t: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat ``t`` along dim 1 until it has at least ``n`` channels and keep the first ``n``."""
    if n == t.shape[1]:
        return t
    return t.repeat(1, math.ceil(n / t.shape[1]), 1, 1)[:, :n]


class GatedDegradationAdaptation(nn.Module):
    """Gated Degradation Adaptation (the paper's Algorithm 1, "GatedDA").

    The input is batch-normalised, per-channel global spatial mean and standard deviation give a
    gate ``sigmoid(mu + sigma)`` that scales the learnable temperature ``tau``; features are
    expanded into ``gamma`` (gate), ``beta`` and ``alpha`` (a large-kernel depthwise path scaled by
    ``1 + tau_adj``), merged, gated, added to the input and projected.

    The statistics are global over H x W, so outputs depend on the image size as in the paper.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        n_gamma, n_beta, n_alpha = gated_split_sizes(channels)
        self.split_sizes = (n_gamma, n_beta, n_alpha)
        self.eps = _GATE_STAT_EPS
        self.norm = nn.BatchNorm2d(channels)
        self.W_exp = nn.Conv2d(channels, n_gamma + n_beta + n_alpha, 1, bias=False)
        self.W_depth = nn.Conv2d(
            n_alpha, n_alpha, _GATE_KERNEL, padding=_GATE_KERNEL // 2, groups=n_alpha, bias=False
        )
        self.W_gate = nn.Conv2d(n_beta + n_alpha, channels, 1, bias=False)
        self.W_proj = nn.Conv2d(channels, channels, 1, bias=False)
        self.tau = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_hat = self.norm(x)
        mu = f_hat.mean(dim=(2, 3), keepdim=True)
        sigma = torch.sqrt((f_hat - mu).square().mean(dim=(2, 3), keepdim=True) + self.eps)
        tau_adj = self.tau * torch.sigmoid(mu + sigma)
        gamma, beta, alpha = torch.split(self.W_exp(f_hat), self.split_sizes, dim=1)
        alpha = self.W_depth(alpha) * (1.0 + tile_channels(tau_adj, self.split_sizes[2]))
        gated = torch.sigmoid(gamma) * self.W_gate(torch.cat([beta, alpha], dim=1))
        return self.W_proj(gated + x)


class FrequencyFusion(nn.Module):
    """Frequency half of the spatial-frequency fusion: ``irfft2(rfft2(a) + rfft2(b))``.

    By linearity of the Fourier transform this equals ``a + b`` up to float rounding; the
    export rewrite :func:`rewrites.fft_fusion_to_add` swaps in :class:`AddFusion`.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft2(a) + torch.fft.rfft2(b)
        return torch.fft.irfft2(spectrum, s=a.shape[-2:])


class AddFusion(nn.Module):
    """Exact spatial-domain equivalent of :class:`FrequencyFusion`."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class DualPathAttention(nn.Module):
    """Attention of a Degradation Adaptation Block with spatial-frequency fusion (Algorithm 2).

    Even channels go through transposed (channel) multi-head attention, odd channels through
    :class:`GatedDegradationAdaptation`. The two outputs ``a`` and ``g`` are fused as
    ``lam * cat[a + sigmoid(g), g + sigmoid(a)] + (1 - lam) * repeat_interleave(freq(a, g), 2)``
    and projected by a 1x1 convolution.
    """

    def __init__(self, channels: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        half = channels // 2
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(half, 3 * half, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * half, 3 * half, 3, padding=1, groups=3 * half, bias=bias)
        self.gatedcnn = GatedDegradationAdaptation(half)
        self.lam = nn.Parameter(torch.tensor(0.5))
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)
        self.frequency_fusion: nn.Module = FrequencyFusion()

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Transposed self-attention across channels, global over H x W (as in Restormer)."""
        return qkv_attention(self.qkv_dwconv(self.qkv(x)), self.num_heads, self.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.channel_attention(x[:, 0::2])
        g = self.gatedcnn(x[:, 1::2])
        spatial = torch.cat([a + torch.sigmoid(g), g + torch.sigmoid(a)], dim=1)
        frequency = self.frequency_fusion(a, g).repeat_interleave(2, dim=1)
        return self.project_out(self.lam * spatial + (1.0 - self.lam) * frequency)


class DegradationAdaptationBlock(PreNormBlock):
    """Pre-norm block: ``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``."""

    def __init__(self, channels: int, num_heads: int, config: AnyIRConfig) -> None:
        super().__init__(layer_norm(channels, config.layernorm), DualPathAttention(channels, num_heads, config.bias),
                         layer_norm(channels, config.layernorm),
                         GatedFeedForward(channels, config.ffn_expansion_factor, config.bias))


def _stage(channels: int, num_heads: int, depth: int, config: AnyIRConfig) -> nn.Sequential:
    return nn.Sequential(*(DegradationAdaptationBlock(channels, num_heads, config) for _ in range(depth)))


class AnyIR(nn.Module):
    """AnyIR (arXiv:2504.14249): a four-level U-Net of Degradation Adaptation Blocks.

    Module names follow the official release so that checkpoints load strictly.

    Args:
        config: Hyper-parameters; defaults to the released network (``VARIANTS["paper"]``).
    """

    def __init__(self, config: AnyIRConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AnyIRConfig()
        d1, d2, d3, d4 = level_widths(config.dim)
        h1, h2, h3, h4 = config.heads
        n1, n2, n3, n4 = config.num_blocks
        bias = config.bias

        self.patch_embed = PatchEmbed(config.in_channels, d1)
        self.encoder_level1 = _stage(d1, h1, n1, config)
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = _stage(d2, h2, n2, config)
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = _stage(d3, h3, n3, config)
        self.down3_4 = Downsample(d3)
        self.latent = _stage(d4, h4, n4, config)

        # Latent -> level 3 first reduces width (new in AnyIR vs Restormer), then upsamples to d2.
        self.up4_3 = Upsample(d3)
        self.reduce_chan_level3 = nn.Conv2d(d2 + d3, d3, 1, bias=bias)
        self.reduce_dim_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = _stage(d3, h3, n3, config)
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = _stage(d2, h2, n2, config)
        self.up2_1 = Upsample(d2)
        self.decoder_level1 = _stage(d2, h1, n1, config)
        self.refinement = _stage(d2, h1, config.num_refinement_blocks, config)
        self.output = nn.Conv2d(d2, config.out_channels, 3, padding=1, bias=bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Restore ``image`` of shape ``(B, C, H, W)``; H and W must be multiples of 8.

        Raises:
            ValueError: If H or W is not a multiple of 8.
        """
        check_input_size(image.shape[-2], image.shape[-1])
        enc1 = self.encoder_level1(self.patch_embed(image))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.reduce_dim_level3(self.latent(self.down3_4(enc3)))

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1))
        return self.output(self.refinement(dec1)) + image
