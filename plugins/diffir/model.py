"""DiffIR: DIRformer, CPEN and the 4-step prior diffusion, written for export.

Reference: B. Xia et al., "DiffIR: Efficient Diffusion Model for Image Restoration", ICCV 2023, and
the authors' release (github.com/Zj-BinXia/DiffIR: ``*/DiffIR/archs/S2_arch.py``, ``ldm/ddpm.py``).

This is an independent implementation. Its parameters carry the official names (``G.*`` for the
DIRformer, ``condition.*`` for CPEN_S2, ``denoise.*`` for the denoising MLP), so released
checkpoints load strictly once their duplicated sub-trees and schedule buffers are folded away
(:mod:`.checkpoint`). What differs from the release, on purpose:

* The starting vector x_T of the reverse diffusion is an explicit input (``noise``, zeros when not
  given) instead of a ``torch.randn`` inside forward, so the eager model and its artifacts are
  bit-comparable.
* The 4 reverse steps are unrolled with the schedule's posterior-mean coefficients as constants
  (x0 parameterisation, posterior mean only, no per-step noise: exactly what the release runs at
  inference), so the exported graph has no loop and no buffer gathers.
* Nearest up-sampling of the SR residual is written as channel repetition + pixel shuffle (the
  same values, but delegated by XNNPACK and convertible by Core ML).

Shape contract: input ``(B, C, H, W)`` with H and W multiples of :attr:`DiffIRConfig.size_multiple`;
output ``(B, 3, H * scale, W * scale)``. The IPR is a ``(B, 256)`` vector (4 x CPEN width 64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeir.plugins._layers.attention import channel_attention
from edgeir.plugins._layers.feedforward import GatedFeedForward
from edgeir.plugins._layers.norm import BodyLayerNorm
from edgeir.plugins._layers.unet import Downsample, PatchEmbed, PreNormBlock, Upsample

__all__ = ["DiffIR", "DiffIRConfig", "config_for", "diffusion_coefficients", "unique_parameter_count"]

_LAYERNORM_EPS = 1e-5
_KINDS = ("deblur", "sr", "inpaint")


@dataclass(frozen=True)
class DiffIRConfig:
    """Hyper-parameters of :class:`DiffIR` (names follow the official ``DiffIRS2`` arguments).

    Attributes:
        kind: ``"deblur"`` (output conv + image residual), ``"sr"`` (x4 up-sampler tail + nearest
            residual, RealSR) or ``"inpaint"`` (masked image + mask in, output conv, no residual).
        in_channels: Image channels in (4 for inpainting: masked RGB + mask).
        out_channels: Image channels out.
        scale: Output size over input size (SR: 4, 2 or 1; the U-net always runs at 1/4 of the
            output size, the input being pixel-unshuffled by 4 / scale).
        dim: Width of DIRformer level 1; levels 2-4 use 2x, 4x, 8x.
        num_blocks: Dynamic transformer blocks per level (decoder levels reuse counts 1-3).
        num_refinement_blocks: Blocks after decoder level 1 (0 for inpainting).
        heads: DMTA heads per level.
        ffn_expansion_factor: DGFN hidden width factor (hidden = int(width * factor)).
        layernorm: ``"with_bias"`` or ``"bias_free"`` (RealSR).
        n_feats: CPEN width; the IPR has ``4 * n_feats`` values (64 -> 256 in every release).
        n_encoder_res: CPEN residual blocks.
        n_denoise_res: Linear layers after the first in the denoising MLP.
        timesteps: Reverse diffusion steps T.
        linear_start: First beta of the schedule.
        linear_end: Last beta of the schedule.
    """

    kind: str = "deblur"
    in_channels: int = 3
    out_channels: int = 3
    scale: int = 1
    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (3, 5, 6, 6)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.0
    layernorm: str = "with_bias"
    n_feats: int = 64
    n_encoder_res: int = 5
    n_denoise_res: int = 1
    timesteps: int = 4
    linear_start: float = 0.1
    linear_end: float = 0.99

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_blocks", tuple(int(n) for n in self.num_blocks))
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "sr" and self.scale not in (1, 2, 4):
            raise ValueError(f"DiffIR SR supports scales 1, 2 and 4 (RealSR releases), got {self.scale}")
        if self.kind != "sr" and self.scale != 1:
            raise ValueError(f"only the SR kind up-scales; {self.kind} needs scale 1, got {self.scale}")
        if self.kind == "deblur" and self.in_channels != self.out_channels:
            raise ValueError("deblurring adds the input image to its output: in_channels must equal out_channels")
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1:
            raise ValueError(f"num_blocks must be 4 integers >= 1, got {self.num_blocks}")
        if len(self.heads) != 4 or min(self.heads) < 1:
            raise ValueError(f"heads must be 4 integers >= 1, got {self.heads}")
        for level, heads in enumerate(self.heads):
            if (self.dim * 2**level) % heads:
                raise ValueError(f"level {level + 1} width {self.dim * 2**level} is not divisible by {heads} heads")
        if self.layernorm not in ("with_bias", "bias_free"):
            raise ValueError(f"layernorm must be 'with_bias' or 'bias_free', got {self.layernorm!r}")
        if self.timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {self.timesteps}")

    @property
    def unshuffle(self) -> int:
        """Pixel-unshuffle factor of the image before the U-net (SR x2: 2, SR x1: 4, else 1)."""
        return 4 // self.scale if self.kind == "sr" else 1

    @property
    def cpen_unshuffle(self) -> int:
        """Pixel-unshuffle factor of the image before CPEN_S2 (4 for deblur/inpaint, 4/scale for SR)."""
        return 4 // self.scale if self.kind == "sr" else 4

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: three 2x down-samplings after the unshuffles."""
        return max(8 * self.unshuffle, self.cpen_unshuffle)

    @property
    def ipr_dim(self) -> int:
        """Length of the IPR vector."""
        return 4 * self.n_feats


def diffusion_coefficients(config: DiffIRConfig) -> list[tuple[float, float]]:
    """Posterior-mean coefficients ``(coef1[t], coef2[t])`` for t = 0..T-1, as float32 values.

    The schedule is the release's "linear" one: betas evenly spaced in sqrt between
    ``linear_start`` and ``linear_end``, squared (float64), with ``alphas_cumprod_prev`` starting
    at 1; coef1 = beta * sqrt(acp_prev) / (1 - acp), coef2 = (1 - acp_prev) * sqrt(alpha) / (1 - acp).
    """
    betas = np.linspace(config.linear_start**0.5, config.linear_end**0.5, config.timesteps, dtype=np.float64) ** 2
    alphas = 1.0 - betas
    cumprod = np.cumprod(alphas)
    cumprod_prev = np.append(1.0, cumprod[:-1])
    coef1 = betas * np.sqrt(cumprod_prev) / (1.0 - cumprod)
    coef2 = (1.0 - cumprod_prev) * np.sqrt(alphas) / (1.0 - cumprod)
    return [(float(np.float32(a)), float(np.float32(b))) for a, b in zip(coef1, coef2, strict=True)]


# --------------------------------------------------------------------------------------------
# DIRformer


def layer_norm(channels: int, kind: str) -> BodyLayerNorm:
    """DIRformer's channel LayerNorm (the release's to_3d / LayerNorm / to_4d; ``body.*`` keys).

    ``bias_free`` scales without subtracting the mean (Restormer's BiasFree_LayerNorm). The
    arithmetic is the release's literal ``(x - mean) / sqrt(var + eps)``, which DiffIR's outputs
    (and its shipped weights' results) are pinned with.
    """
    return BodyLayerNorm(channels, bias=kind == "with_bias", eps=_LAYERNORM_EPS, arithmetic="sqrt-divide")


class TransposedAttention(nn.Module):
    """Multi-head transposed (channel) attention over the whole map: a global operation.

    Parameter-free on purpose: the attention core is one small module so a local (TLC) version
    can replace it without touching the weights; the arithmetic is the shared
    :func:`~edgeir.plugins._layers.attention.channel_attention`.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        return channel_attention(q, k, v, self.num_heads, temperature)


class DMTA(nn.Module):
    """Dynamic multi-head transposed attention (Eq. 6-7): IPR modulation, 1x1 + depth-wise qkv,
    transposed attention, 1x1 projection. Keys as the release's ``Attention``."""

    def __init__(self, channels: int, num_heads: int, ipr_dim: int) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.kernel = nn.Sequential(nn.Linear(ipr_dim, 2 * channels, bias=False))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=False)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=False)
        self.attend = TransposedAttention(num_heads)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        scale, shift = self.kernel(ipr).view(ipr.shape[0], -1, 1, 1).chunk(2, dim=1)
        x = x * scale + shift
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        return self.project_out(self.attend(q, k, v, self.temperature))


class DGFN(GatedFeedForward):
    """Dynamic gated feed-forward network (Eq. 6, 8): IPR modulation, then the GDFN (1x1 to 2 x hidden,
    depth-wise 3x3, GELU gate, 1x1 back). Keys as the release's ``FeedForward`` plus ``kernel``."""

    def __init__(self, channels: int, expansion: float, ipr_dim: int) -> None:
        # Built before the convolutions, as in the release, so a seeded random initialisation draws the same values.
        kernel = nn.Sequential(nn.Linear(ipr_dim, 2 * channels, bias=False))
        super().__init__(channels, expansion, bias=False)
        self.kernel = kernel

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        scale, shift = self.kernel(ipr).view(ipr.shape[0], -1, 1, 1).chunk(2, dim=1)
        return super().forward(x * scale + shift)


class DynamicTransformerBlock(PreNormBlock):
    """One DIRformer block: x + DMTA(LN(x), Z), then x + DGFN(LN(x), Z); ``forward(x, ipr)``."""

    def __init__(self, channels: int, num_heads: int, config: DiffIRConfig) -> None:
        super().__init__(layer_norm(channels, config.layernorm), DMTA(channels, num_heads, config.ipr_dim),
                         layer_norm(channels, config.layernorm),
                         DGFN(channels, config.ffn_expansion_factor, config.ipr_dim))


class Stage(nn.ModuleList):
    """Blocks of one level, each given the IPR (the release passes ``[x, ipr]`` through a Sequential)."""

    def __init__(self, channels: int, num_heads: int, depth: int, config: DiffIRConfig) -> None:
        super().__init__([DynamicTransformerBlock(channels, num_heads, config) for _ in range(depth)])

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x, ipr)
        return x


def nearest_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Nearest-neighbour up-sampling by ``scale`` as channel repetition + pixel shuffle.

    Equal to ``F.interpolate(x, scale_factor=scale, mode="nearest")`` value for value; written
    this way because nearest interpolation is not delegated to XNNPACK.
    """
    if scale == 1:
        return x
    return F.pixel_shuffle(x.repeat_interleave(scale * scale, dim=1), scale)


class DIRformer(nn.Module):
    """The restoration U-net whose every block is modulated by the IPR (keys = the release's ``G``)."""

    def __init__(self, config: DiffIRConfig) -> None:
        super().__init__()
        self.config = config
        dim, blocks, heads = config.dim, config.num_blocks, config.heads
        widths = [dim, 2 * dim, 4 * dim, 8 * dim]
        embed_in = config.in_channels * config.unshuffle**2
        self.patch_embed = PatchEmbed(embed_in, dim)
        self.encoder_level1 = Stage(widths[0], heads[0], blocks[0], config)
        self.down1_2 = Downsample(widths[0])
        self.encoder_level2 = Stage(widths[1], heads[1], blocks[1], config)
        self.down2_3 = Downsample(widths[1])
        self.encoder_level3 = Stage(widths[2], heads[2], blocks[2], config)
        self.down3_4 = Downsample(widths[2])
        self.latent = Stage(widths[3], heads[3], blocks[3], config)
        self.up4_3 = Upsample(widths[3])
        self.reduce_chan_level3 = nn.Conv2d(widths[3], widths[2], 1, bias=False)
        self.decoder_level3 = Stage(widths[2], heads[2], blocks[2], config)
        self.up3_2 = Upsample(widths[2])
        self.reduce_chan_level2 = nn.Conv2d(widths[2], widths[1], 1, bias=False)
        self.decoder_level2 = Stage(widths[1], heads[1], blocks[1], config)
        self.up2_1 = Upsample(widths[1])
        self.decoder_level1 = Stage(widths[1], heads[0], blocks[0], config)
        if config.num_refinement_blocks:
            self.refinement = Stage(widths[1], heads[0], config.num_refinement_blocks, config)
        else:
            self.refinement = None
        if config.kind == "sr":
            # Upsampler(scale 4) = 2 x [conv3x3(n -> 4n, bias) + PixelShuffle(2)], then conv3x3(n -> out, bias).
            n = widths[1]
            upsampler = nn.Sequential(nn.Conv2d(n, 4 * n, 3, padding=1), nn.PixelShuffle(2),
                                      nn.Conv2d(n, 4 * n, 3, padding=1), nn.PixelShuffle(2))
            self.tail = nn.Sequential(upsampler, nn.Conv2d(n, config.out_channels, 3, padding=1))
        else:
            self.output = nn.Conv2d(widths[1], config.out_channels, 3, padding=1, bias=False)

    def forward(self, image: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        config = self.config
        feat = F.pixel_unshuffle(image, config.unshuffle) if config.unshuffle > 1 else image
        enc1 = self.encoder_level1(self.patch_embed(feat), ipr)
        enc2 = self.encoder_level2(self.down1_2(enc1), ipr)
        enc3 = self.encoder_level3(self.down2_3(enc2), ipr)
        latent = self.latent(self.down3_4(enc3), ipr)
        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        dec3 = self.decoder_level3(dec3, ipr)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1))
        dec2 = self.decoder_level2(dec2, ipr)
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1), ipr)
        if self.refinement is not None:
            dec1 = self.refinement(dec1, ipr)
        if config.kind == "sr":
            return self.tail(dec1) + nearest_upsample(image, config.scale)
        if config.kind == "deblur":
            return self.output(dec1) + image
        return self.output(dec1)


# --------------------------------------------------------------------------------------------
# CPEN and the denoising network


class GlobalAvgPool(nn.Module):
    """Average over all pixels, ``(B, C, H, W) -> (B, C)``: a global operation.

    One small module (the release's ``AdaptiveAvgPool2d(1)`` + squeeze) so a local (TLC)
    version can replace it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class ResBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))`` with biased 3x3 convs (the release's common.ResBlock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class CPEN(nn.Module):
    """Compact IR prior extraction network (CPEN_S2: sees the LQ image only).

    ``E`` keeps the release's Sequential indices (first conv, ResBlocks, 64 -> 128 -> 128 -> 256
    convs with LeakyReLU, global pooling), then ``mlp`` (two linear layers with LeakyReLU).
    """

    def __init__(self, in_channels: int, n_feats: int, n_encoder_res: int, unshuffle: int) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        layers: list[nn.Module] = [nn.Conv2d(in_channels * unshuffle**2, n_feats, 3, padding=1), nn.LeakyReLU(0.1)]
        layers += [ResBlock(n_feats) for _ in range(n_encoder_res)]
        layers += [nn.Conv2d(n_feats, 2 * n_feats, 3, padding=1), nn.LeakyReLU(0.1),
                   nn.Conv2d(2 * n_feats, 2 * n_feats, 3, padding=1), nn.LeakyReLU(0.1),
                   nn.Conv2d(2 * n_feats, 4 * n_feats, 3, padding=1), nn.LeakyReLU(0.1),
                   GlobalAvgPool()]
        self.E = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(4 * n_feats, 4 * n_feats), nn.LeakyReLU(0.1),
                                 nn.Linear(4 * n_feats, 4 * n_feats), nn.LeakyReLU(0.1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(image, self.unshuffle) if self.unshuffle > 1 else image
        return self.mlp(self.E(x))


class _ResMLP(nn.Module):
    """Linear + LeakyReLU held as ``resmlp`` (no residual add, despite the release's name)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.resmlp = nn.Sequential(nn.Linear(width, width), nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resmlp(x)


class DenoiseMLP(nn.Module):
    """The denoising network: predicts x0 from ``cat(condition, t / (10 T), x_t)``."""

    def __init__(self, n_feats: int, n_denoise_res: int, timesteps: int) -> None:
        super().__init__()
        self.max_period = timesteps * 10
        width = 4 * n_feats
        layers: list[nn.Module] = [nn.Linear(2 * width + 1, width), nn.LeakyReLU(0.1)]
        layers += [_ResMLP(width) for _ in range(n_denoise_res)]
        self.resmlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, step: int, condition: torch.Tensor) -> torch.Tensor:
        t = torch.ones_like(condition[:, :1]) * (float(step) / self.max_period)
        return self.resmlp(torch.cat([condition, t, x], dim=1))


# --------------------------------------------------------------------------------------------
# The whole model


class DiffIR(nn.Module):
    """DiffIR_S2 at inference: IPR = reverse diffusion guided by CPEN_S2(LQ); HQ = DIRformer(LQ, IPR).

    ``forward(lq, noise)`` runs both; :meth:`prior` and :meth:`restore` are the two halves, so a
    large photo can get one IPR from a down-scaled whole image and restore every tile with it.
    """

    def __init__(self, config: DiffIRConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffIRConfig()
        c = self.config
        self.G = DIRformer(c)
        self.condition = CPEN(c.in_channels, c.n_feats, c.n_encoder_res, c.cpen_unshuffle)
        self.denoise = DenoiseMLP(c.n_feats, c.n_denoise_res, c.timesteps)
        self.coefficients = diffusion_coefficients(c)

    def check_input(self, image: torch.Tensor) -> None:
        """Raise ``ValueError`` for a wrong rank, channel count or H/W that is not a multiple."""
        c = self.config
        if image.dim() != 4 or image.shape[1] != c.in_channels:
            raise ValueError(f"DiffIR expects (B, {c.in_channels}, H, W); got {tuple(image.shape)}")
        h, w = image.shape[-2:]
        m = c.size_multiple
        if h % m or w % m:
            raise ValueError(f"DiffIR ({c.kind}, scale {c.scale}) needs H and W multiples of {m}; got {h}x{w}")

    def prior(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The IPR estimated from the LQ image: T unrolled reverse steps from ``noise`` (x_T).

        Args:
            image: LQ image (B, C, H, W).
            noise: Starting vector x_T (B, 256); zeros when None.
        """
        self.check_input(image)
        condition = self.condition(image)
        ipr = torch.zeros_like(condition) if noise is None else noise
        for step in reversed(range(self.config.timesteps)):
            x0 = self.denoise(ipr, step, condition)
            coef1, coef2 = self.coefficients[step]
            ipr = x0 * coef1 + ipr * coef2 if coef2 else x0 * coef1
        return ipr

    def restore(self, image: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        """The HQ image from the LQ image (or a tile of it) and an IPR."""
        self.check_input(image)
        return self.G(image, ipr)

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.restore(image, self.prior(image, noise))


class PriorProgram(nn.Module):
    """Export entry point ``prior``: (LQ, x_T) -> IPR."""

    def __init__(self, model: DiffIR) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model.prior(image, noise)


class RestoreProgram(nn.Module):
    """Export entry point ``restore``: (LQ tile, IPR) -> HQ tile."""

    def __init__(self, model: DiffIR) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        return self.model.restore(image, ipr)


def unique_parameter_count(module: nn.Module) -> int:
    """Parameters counted once each (the release registers CPEN and the MLP twice)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


# --------------------------------------------------------------------------------------------
# Configurations

_PAPER = {
    # DiffIR-demotionblur/options/test_DiffIRS2.yml
    "deblur": DiffIRConfig(kind="deblur", dim=48, num_blocks=(3, 5, 6, 6), num_refinement_blocks=4,
                           ffn_expansion_factor=2.0, n_encoder_res=5),
    # DiffIR-RealSR/options/test_DiffIRS2_GAN_x{4,2,1}.yml
    "sr": DiffIRConfig(kind="sr", scale=4, dim=64, num_blocks=(13, 1, 1, 1), num_refinement_blocks=13,
                       ffn_expansion_factor=2.2, layernorm="bias_free", n_encoder_res=9),
    # DiffIR-inpainting/configs/training/generator/DiffIRS2-{celeba,place2}.yaml
    "inpaint": DiffIRConfig(kind="inpaint", in_channels=4, dim=52, num_blocks=(1, 1, 1, 9), num_refinement_blocks=0,
                            ffn_expansion_factor=1.8, n_encoder_res=5),
}
_MOBILE = {
    "deblur": dict(dim=24, num_blocks=(1, 2, 2, 3), num_refinement_blocks=1, n_encoder_res=2),
    "sr": dict(dim=24, num_blocks=(4, 1, 1, 1), num_refinement_blocks=2, n_encoder_res=2),
    "inpaint": dict(dim=24, num_blocks=(1, 1, 1, 3), num_refinement_blocks=0, n_encoder_res=2),
}
_TINY = dict(dim=8, num_blocks=(1, 1, 1, 1), n_encoder_res=1)


def _task_kind(task: str) -> tuple[str, int]:
    if task.startswith("sr"):
        return "sr", int(task[2:])
    if task.startswith("denoise"):  # image in, image out with a residual: the deblurring layout
        return "deblur", 1
    return task, 1


def config_for(variant: str, task: str) -> DiffIRConfig:
    """The configuration of ``variant`` for ``task`` (``deblur``, ``sr4``, ``sr2``, ``sr1``, ``inpaint``).

    The Gaussian denoising tasks (``denoise15/25/50``), which the paper does not train, take the
    deblurring layout: the same image-to-image DIRformer with an image residual.
    """
    import dataclasses

    kind, scale = _task_kind(task)
    if kind not in _PAPER:
        raise ValueError(f"DiffIR has no configuration for task {task!r}")
    base = dataclasses.replace(_PAPER[kind], scale=scale)
    if variant == "paper":
        return base
    if variant == "mobile":
        return dataclasses.replace(base, **_MOBILE[kind])
    if variant == "tiny":
        refinement = 1 if base.num_refinement_blocks else 0
        return dataclasses.replace(base, num_refinement_blocks=refinement, **_TINY)
    raise ValueError(f"DiffIR has no variant {variant!r}")

