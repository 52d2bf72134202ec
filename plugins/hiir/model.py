"""Hi-IR networks: hierarchical information flow layers in a columnar (SR) or U-shape body.

Li et al., "Hierarchical Information Flow for Generalized Efficient Image Restoration" (Hi-IR),
arXiv 2411.18588. No official code is public, so this module is the reference; every choice the
paper leaves open is listed here with the section it comes from.

Layer (v3 layout, Sec. 3 and Sec. 5.1, Fig. 5):
    * L1 (Sec. 3): dot-product multi-head attention inside non-overlapping ``window x window``
      patches. L2 (Sec. 3): the L1 output is permuted so that the tokens at the same position in
      the ``grid x grid`` neighbouring L1 patches form one window, and attended again. The
      permutation is reshape/permute only (rank <= 5, static shapes), so it stays inside the
      XNNPACK delegate. v3: q and k of both levels have half the channels of v, and there is no
      projection between L1 and L2; one output projection follows L2. OPEN: L1 and L2 use the same
      number of heads; each has its own relative-position bias table (L1 over the window, L2 over
      the grid of patches).
    * L3 (Sec. 3, Sec. 4.2): a convolutional FFN built as the bottleneck ``conv3`` of Sec. 4.2:
      1x1 (C -> m), 3x3 (m -> m), 1x1 (m -> C), m = C * mlp_ratio / 4 (the middle conv has a
      quarter of the channels of an ``mlp_ratio`` FFN). OPEN: GELU after the first two convs.
    * Pre-norm LayerNorm and residuals as in Swin (Sec. 4.2 compares with Swin's layer). Dot-product
      attention, not cosine attention (Sec. 4.2, Tab. 5).
    * Training (Sec. 4.2, Appx. B): warm the learning rate up for the first 50k iterations for the
      large models; no layer scale or weight rescaling (Tab. 4 shows 0.1/0.01 rescales and
      zero-initialised LayerNorm do not help). AdamW and L1 loss (Charbonnier for deblurring), Appx. A.2.

Columnar (Appx. A.1, Fig. 8): SwinIR-style conv stem, ``stages`` x ``depth`` Hi-IR layers, each
stage closed by the bottleneck conv3 (Sec. 4.2 replaces the stage's 3x3 conv with it) and a
residual, LayerNorm, 3x3 conv, pixel-shuffle upsampler (64 features). OPEN: window 8, grid 4,
6 heads, the width chosen to match Tab. 8's parameter count (Hi-IR-B 14.68M, Hi-IR-L 39.07M).

U-shape (Appx. A.1, Tab. 17): 3 down stages, latent, 3 up stages of 6 layers; Restormer-style
pixel-unshuffle downsampling and pixel-shuffle upsampling with 1x1 skip fusion; widths C, 2C, 4C,
8C; output = input + residual. OPEN: width chosen to match the 22.33M of Tab. 6; per-level windows
(8,4), (8,2), (4,2), (2,2) so that every level needs H, W multiples of 32 at full resolution.
Heads 2/2/4/8, never 1: a one-head layer exports to ExecuTorch/XNNPACK (1.4.1) but fails at run
time ("Propagating input shapes failed ... xnn_status_invalid_parameter"); two heads run and match.

Relative-position biases are gathered from a trainable table in training; :meth:`freeze_bias`
folds them into a constant buffer for export (a run-time gathered bias is not delegated and breaks
int8 XNNPACK artifacts). The bias depends only on window/grid sizes, never on H or W.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


def _relative_index(size: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (size - 1)
    return rel[..., 0] * (2 * size - 1) + rel[..., 1]


class RelativeBias(nn.Module):
    """Relative-position bias (1, heads, N, N) of a ``size x size`` window; frozen into a buffer for export."""

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        self.size, self.heads = size, heads
        self.table = nn.Parameter(torch.zeros((2 * size - 1) ** 2, heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self.register_buffer("index", _relative_index(size).flatten(), persistent=False)
        self.frozen: torch.Tensor | None = None

    def freeze(self) -> None:
        """Store the gathered bias as a constant so the exported graph has no gather."""
        n = self.size * self.size
        self.frozen = self.forward().detach().clone()
        self.register_buffer("frozen_bias", self.frozen, persistent=False)
        assert self.frozen.shape == (1, self.heads, n, n)

    def forward(self) -> torch.Tensor:
        if self.frozen is not None:
            return self.frozen_bias
        n = self.size * self.size
        return self.table[self.index].reshape(1, n, n, self.heads).permute(0, 3, 1, 2).contiguous()


def window_partition(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/size * W/size, size*size, C), rank <= 5."""
    b, h, w, c = x.shape
    x = x.reshape(b * (h // size), size, w // size, size, c).permute(0, 2, 1, 3, 4)
    return x.reshape(-1, size * size, c)


def window_reverse(x: torch.Tensor, size: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = x.shape[-1]
    x = x.reshape(b * (h // size), w // size, size, size, c).permute(0, 2, 1, 3, 4)
    return x.reshape(b, h, w, c)


def swap_grid(x: torch.Tensor, first: int, second: int) -> torch.Tensor:
    """Within each region of ``first*second`` rows/cols, reorder (first, second) -> (second, first).

    With ``first=grid, second=window`` this makes the tokens at one position in ``grid x grid``
    neighbouring L1 windows contiguous ``grid x grid`` blocks (the L2 permutation of Sec. 3);
    ``first=window, second=grid`` undoes it. Reshape/permute only, rank <= 5.
    """
    b, h, w, c = x.shape
    r = first * second
    x = x.reshape(b * (h // r), first, second, w * c).permute(0, 2, 1, 3).reshape(b, h, w, c)
    x = x.reshape(b * h, w // r, first, second, c).permute(0, 1, 3, 2, 4)
    return x.reshape(b, h, w, c)


class HierarchicalAttention(nn.Module):
    """v3 L1 + L2 attention of Sec. 5.1: half-width q/k, no projection between L1 and L2."""

    def __init__(self, dim: int, heads: int, window: int, grid: int, use_l2: bool = True) -> None:
        super().__init__()
        if dim % (2 * heads):
            raise ValueError(f"dim {dim} must be a multiple of 2 * heads ({2 * heads})")
        self.dim, self.heads, self.window, self.grid, self.use_l2 = dim, heads, window, grid, use_l2
        qk = dim // 2
        self.scale = (qk // heads) ** -0.5
        self.q1, self.k1, self.v1 = nn.Linear(dim, qk), nn.Linear(dim, qk), nn.Linear(dim, dim)
        self.bias1 = RelativeBias(window, heads)
        self.q2, self.k2, self.v2 = nn.Linear(dim, qk), nn.Linear(dim, qk), nn.Linear(dim, dim)
        self.bias2 = RelativeBias(grid, heads)
        self.proj = nn.Linear(dim, dim)

    def _attend(self, t: torch.Tensor, q: nn.Linear, k: nn.Linear, v: nn.Linear, bias: RelativeBias) -> torch.Tensor:
        nw, n, c = t.shape
        h = self.heads
        qh = q(t).reshape(nw, n, h, -1).permute(0, 2, 1, 3).reshape(nw * h, n, -1)
        kh = k(t).reshape(nw, n, h, -1).permute(0, 2, 3, 1).reshape(nw * h, -1, n)
        vh = v(t).reshape(nw, n, h, -1).permute(0, 2, 1, 3).reshape(nw * h, n, -1)
        attn = torch.bmm(qh * self.scale, kh).reshape(nw, h, n, n) + bias()
        attn = attn.softmax(dim=-1).reshape(nw * h, n, n)
        out = torch.bmm(attn, vh).reshape(nw, h, n, -1).permute(0, 2, 1, 3)
        return out.reshape(nw, n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        y = window_reverse(self._attend(window_partition(x, self.window), self.q1, self.k1, self.v1, self.bias1),
                           self.window, b, h, w)
        if self.use_l2 and self.grid > 1:
            y = swap_grid(y, self.grid, self.window)
            y = self._attend(window_partition(y, self.grid), self.q2, self.k2, self.v2, self.bias2)
            y = swap_grid(window_reverse(y, self.grid, b, h, w), self.window, self.grid)
        return self.proj(y)


class Bottleneck(nn.Module):
    """Bottleneck conv3 of Sec. 4.2 on NCHW: 1x1 (C -> m), 3x3 (m -> m), 1x1 (m -> C), GELU between."""

    def __init__(self, dim: int, mid: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.conv3 = nn.Conv2d(mid, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


class HiIRLayer(nn.Module):
    """One Hi-IR layer on (B, H, W, C): L1+L2 attention, then the L3 convolutional FFN."""

    def __init__(self, dim: int, heads: int, window: int, grid: int, mlp_ratio: float, use_l2: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HierarchicalAttention(dim, heads, window, grid, use_l2)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = Bottleneck(dim, max(1, int(dim * mlp_ratio / 4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        y = self.ffn(self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + y


class HiIRStage(nn.Module):
    """``depth`` layers on NCHW input, closed by a bottleneck conv3 and a residual."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, grid: int, mlp_ratio: float,
                 conv: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(HiIRLayer(dim, heads, window, grid, mlp_ratio) for _ in range(depth))
        self.conv = Bottleneck(dim, max(1, dim // 4)) if conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.permute(0, 2, 3, 1)
        for layer in self.layers:
            y = layer(y)
        y = y.permute(0, 3, 1, 2)
        return x + self.conv(y) if self.conv is not None else y


@dataclass(frozen=True)
class ColumnarConfig:
    """Columnar (SR) Hi-IR configuration."""

    dim: int
    stages: int
    depth: int
    heads: int
    window: int = 8
    grid: int = 4
    mlp_ratio: float = 2.0
    features: int = 64

    @property
    def size_multiple(self) -> int:
        return self.window * self.grid


@dataclass(frozen=True)
class UShapeConfig:
    """U-shape Hi-IR configuration; ``windows``/``heads`` per level (3 encoder levels + latent)."""

    dim: int
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int]
    windows: tuple[tuple[int, int], ...] = field(default=((8, 4), (8, 2), (4, 2), (2, 2)))
    mlp_ratio: float = 2.0
    refine: int = 0

    @property
    def size_multiple(self) -> int:
        return max(w * g * 2 ** i for i, (w, g) in enumerate(self.windows))


class HiIRColumnar(nn.Module):
    """Columnar Hi-IR for super-resolution (Appx. A.1, Fig. 8)."""

    def __init__(self, cfg: ColumnarConfig, scale: int, channels: int = 3) -> None:
        super().__init__()
        self.cfg, self.scale = cfg, scale
        self.size_multiple = cfg.size_multiple
        c = cfg.dim
        self.conv_first = nn.Conv2d(channels, c, 3, padding=1)
        self.stages = nn.ModuleList(HiIRStage(c, cfg.depth, cfg.heads, cfg.window, cfg.grid, cfg.mlp_ratio)
                                    for _ in range(cfg.stages))
        self.norm = nn.LayerNorm(c)
        self.conv_after_body = nn.Conv2d(c, c, 3, padding=1)
        f = cfg.features
        up: list[nn.Module] = [nn.Conv2d(c, f, 3, padding=1), nn.LeakyReLU(inplace=True)]
        if scale in (2, 4):
            for _ in range(scale // 2):
                up += [nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2)]
        elif scale == 3:
            up += [nn.Conv2d(f, 9 * f, 3, padding=1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"unsupported SR scale {scale}")
        self.upsample = nn.Sequential(*up)
        self.conv_last = nn.Conv2d(f, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.size_multiple)
        feat = self.conv_first(x)
        y = feat
        for stage in self.stages:
            y = stage(y)
        y = self.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.conv_after_body(y) + feat
        return self.conv_last(self.upsample(y))


class HiIRUNet(nn.Module):
    """U-shape Hi-IR (Appx. A.1, Tab. 17) for denoising, JPEG, deblurring; predicts a residual."""

    def __init__(self, cfg: UShapeConfig, channels: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        self.size_multiple = cfg.size_multiple
        dims = [cfg.dim * 2 ** i for i in range(4)]

        def stage(level: int) -> HiIRStage:
            w, g = cfg.windows[level]
            return HiIRStage(dims[level], cfg.depths[level], cfg.heads[level], w, g, cfg.mlp_ratio, conv=False)

        self.conv_first = nn.Conv2d(channels, dims[0], 3, padding=1)
        self.encoders = nn.ModuleList(stage(i) for i in range(3))
        self.downs = nn.ModuleList(nn.Sequential(nn.Conv2d(dims[i], dims[i] // 2, 3, padding=1), nn.PixelUnshuffle(2))
                                   for i in range(3))
        self.latent = stage(3)
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(dims[i + 1], dims[i + 1] * 2, 3, padding=1),
                                               nn.PixelShuffle(2)) for i in range(3))
        self.fuse = nn.ModuleList(nn.Conv2d(2 * dims[i], dims[i], 1) for i in range(3))
        self.decoders = nn.ModuleList(stage(i) for i in range(3))
        self.conv_last = nn.Conv2d(dims[0], channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.size_multiple)
        y = self.conv_first(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            y = enc(y)
            skips.append(y)
            y = down(y)
        y = self.latent(y)
        for i in (2, 1, 0):
            y = self.ups[i](y)
            y = self.fuse[i](torch.cat([y, skips[i]], dim=1))
            y = self.decoders[i](y)
        return x + self.conv_last(y)


def _check(x: torch.Tensor, multiple: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"Hi-IR expects a (N, C, H, W) tensor; got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if not torch.compiler.is_compiling() and isinstance(h, int) and (h % multiple or w % multiple):
        raise ValueError(f"Hi-IR needs H and W multiples of {multiple}; got {h}x{w}")


def freeze_biases(model: nn.Module) -> nn.Module:
    """Fold every relative-position bias into a constant buffer (in place); returns ``model``."""
    for m in model.modules():
        if isinstance(m, RelativeBias):
            m.freeze()
    return model


COLUMNAR = {
    "paper": ColumnarConfig(dim=216, stages=6, depth=6, heads=6),
    "large": ColumnarConfig(dim=264, stages=8, depth=8, heads=6),
    "mobile": ColumnarConfig(dim=48, stages=3, depth=2, heads=3, window=8, grid=2, features=32),
    "tiny": ColumnarConfig(dim=16, stages=1, depth=2, heads=2, window=4, grid=2, features=16),
}
USHAPE = {
    "paper": UShapeConfig(dim=56, depths=(6, 6, 6, 6), heads=(2, 2, 4, 8)),
    "large": UShapeConfig(dim=64, depths=(8, 8, 8, 8), heads=(2, 2, 4, 8)),
    "mobile": UShapeConfig(dim=16, depths=(1, 2, 2, 2), heads=(2, 2, 2, 4)),
    "tiny": UShapeConfig(dim=8, depths=(1, 1, 1, 1), heads=(2, 2, 2, 2), windows=((4, 2), (4, 2), (2, 2), (2, 2))),
}


def build(variant: str, task: str) -> nn.Module:
    """The Hi-IR model of ``variant`` for ``task`` (columnar for sr*, U-shape otherwise)."""
    if task.startswith("sr"):
        return HiIRColumnar(COLUMNAR[variant], scale=int(task[2:]))
    return HiIRUNet(USHAPE[variant])
