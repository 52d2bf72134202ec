"""FlexIR: a SwinIR backbone with a branch exit (B-RSTB) after every residual Swin transformer group.

Paper: "FlexIR: Towards Flexible and Manipulable Image Restoration" (ACM MM 2024), Fig. 2 and Eq. 1.
Backbone facts follow the official SwinIR code (JingyunLiang/SwinIR, ``models/network_swinir.py``);
this is our own export-friendly rebuild:

- features between stages are NCHW; inside a group, Swin blocks work on channels-last (B, H, W, C);
- window partition stays at rank <= 5 (Core ML) and shapes come from the static input;
- the cyclic shift is two slices and a concat (``torch.roll`` is not delegated by XNNPACK);
- the shifted-window mask is computed once per input shape (cached), and
  :func:`freeze_attention` turns the relative-position bias of each block into a constant buffer
  and gives all shifted blocks one shared mask, for an export shape (a gathered bias breaks int8
  XNNPACK artifacts, see NOTES.md); the mask is kept as a row part and a column part
  (:func:`separable_window_masks`), 16x smaller than SwinIR's per-window mask for ``mobile``;
- LayerNorm over channels uses linear layers for its mean and variance (XNNPACK delegates
  ``linear``, not ``native_layer_norm`` or ``mean``).

Pointer semantics (Eq. 1): with pointer P the first P groups run as encoders (switch off) and the
branch of group P (its exit head) turns the feature into the residual added to the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)
MASK_FILL = -100.0


@dataclass(frozen=True)
class FlexIRConfig:
    """Architecture hyper-parameters (names as in SwinIR's constructor).

    Args:
        groups: Number of RSTB / B-RSTB (exits).
        depth: Swin blocks per group.
        dim: Embedding width.
        heads: Attention heads.
        window: Window size; inputs must be multiples of it.
        mlp_ratio: MLP hidden width over ``dim``.
        img_range: Pixel scale inside the network (1, or 255 for JPEG as in SwinIR CAR).
        upscale: 1 for denoise/JPEG, 2/3/4 for super-resolution.
        num_feat: Width of the pixel-shuffle reconstruction (SR only; 64 in SwinIR).
        in_chans: Image channels.
    """

    groups: int
    depth: int
    dim: int
    heads: int
    window: int
    mlp_ratio: float = 2.0
    img_range: float = 1.0
    upscale: int = 1
    num_feat: int = 64
    in_chans: int = 3


VARIANTS = {
    "paper": FlexIRConfig(groups=6, depth=6, dim=180, heads=6, window=8),
    "mobile": FlexIRConfig(groups=4, depth=4, dim=60, heads=6, window=8, num_feat=32),
    "tiny": FlexIRConfig(groups=2, depth=2, dim=16, heads=2, window=4, num_feat=16),
}


def config_for(variant: str, task: str) -> FlexIRConfig:
    """The configuration of ``variant`` for ``task`` (JPEG: img_range 255 and, for ``paper``, window 7)."""
    config = VARIANTS[variant]
    if task.startswith("jpeg"):
        config = replace(config, img_range=255.0, window=7 if variant == "paper" else config.window)
    if task.startswith("sr"):
        config = replace(config, upscale=int(task[2:]))
    return config


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the last (channel) axis with mean and variance as linear layers.

    Numerically LayerNorm (eps 1e-5 as ``nn.LayerNorm``); ``weight``/``bias`` keep SwinIR's names.
    ``eps`` is the variance linear's bias: coremltools 9.0's ``fuse_linear_bias`` pass crashes on a
    one-output linear followed by a scalar add (IndexError on a 0-d bias).
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps
        self.register_buffer("average", torch.full((1, dim), 1.0 / dim), persistent=False)
        self.register_buffer("eps_bias", torch.full((1,), eps), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - F.linear(x, self.average)
        variance = F.linear(centred * centred, self.average, self.eps_bias)
        return centred * torch.rsqrt(variance) * self.weight + self.bias


def relative_position_index(window: int) -> torch.Tensor:
    """(N*N,) index into the ((2w-1)^2, heads) bias table, N = window^2 (as in Swin/SwinIR)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).reshape(-1)


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """(nW, N, N) additive mask of SwinIR's shifted windows: -100 between tokens of different regions."""
    regions = torch.zeros(height, width)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            regions[hs, ws] = count
            count += 1
    windows = partition(regions[None, :, :, None], window).squeeze(-1)  # (nW, N)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_FILL)


def separable_window_masks(height: int, width: int, window: int, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SwinIR's shifted-window mask as a row part (nWh, 1, N, N) and a column part (nWw, 1, N, N).

    A token's region is (row band, column band); two tokens may attend when both bands agree.
    ``row[i] + col[j]`` is -100 where one band differs and -200 where both do, which softmax
    turns into the same zero weights as :func:`shifted_window_mask`'s -100 (every token keeps
    itself), while the constants shrink from nW x N^2 to (nWh + nWw) x N^2 floats: 16 MB -> 1 MB
    for ``mobile`` at 256x256.
    """
    def bands(size: int) -> torch.Tensor:  # (n_windows, window): the band of each line of each window
        band = torch.zeros(size)
        band[-window:-shift], band[-shift:] = 1, 2
        return band.reshape(size // window, window)

    def mask(line_bands: torch.Tensor, along_rows: bool) -> torch.Tensor:
        grid = line_bands[:, :, None].expand(-1, window, window)  # token (a, b) of the window
        token = (grid if along_rows else grid.transpose(1, 2)).reshape(line_bands.shape[0], -1)
        diff = token[:, None, :] - token[:, :, None]
        return torch.zeros_like(diff).masked_fill(diff != 0, MASK_FILL)[:, None]

    return mask(bands(height), along_rows=True), mask(bands(width), along_rows=False)


def partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, window^2, C), in steps of rank <= 4."""
    b, h, w, c = x.shape
    x = x.reshape(b * (h // window), window, w // window, window * c).permute(0, 2, 1, 3)
    return x.reshape(-1, window * window, c)


def merge(windows: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`partition`."""
    c = windows.shape[-1]
    x = windows.reshape(b * (h // window), w // window, window, window * c).permute(0, 2, 1, 3)
    return x.reshape(b, h, w, c)


def cyclic_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``torch.roll(x, (shift, shift), dims=(1, 2))`` on (B, H, W, C) with slices and concat."""
    if shift < 0:
        shift_h, shift_w = x.shape[1] + shift, x.shape[2] + shift
    else:
        shift_h = shift_w = shift
    x = torch.cat([x[:, -shift_h:], x[:, :-shift_h]], dim=1)
    return torch.cat([x[:, :, -shift_w:], x[:, :, :-shift_w]], dim=2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with SwinIR's relative-position bias."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.dim, self.heads, self.window = dim, heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) bias gathered from the table (trainable; run-time gather)."""
        n = self.window * self.window
        return self.relative_position_bias_table[self.relative_position_index].reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor,
                mask: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``x``: (B*nW, N, C); ``bias``: (heads, N, N); ``mask``: None or the (row, column) parts of
        :func:`separable_window_masks`, added to the logits."""
        bw, n, c = x.shape
        h, d = self.heads, c // self.heads
        qkv = self.qkv(x)
        q = (qkv[..., :c] * self.scale).reshape(bw, n, h, d).permute(0, 2, 1, 3).reshape(bw * h, n, d)
        k = qkv[..., c:2 * c].reshape(bw, n, h, d).permute(0, 2, 3, 1).reshape(bw * h, d, n)
        v = qkv[..., 2 * c:].reshape(bw, n, h, d).permute(0, 2, 1, 3).reshape(bw * h, n, d)
        logits = torch.bmm(q, k).reshape(bw, h, n, n) + bias
        if mask is not None:
            row, col = mask  # windows are ordered row-major: (B, nWh, nWw)
            logits = logits.reshape(-1, col.shape[0], h, n, n) + col
            logits = logits.reshape(-1, row.shape[0], col.shape[0] * h, n, n) + row
        attn = torch.softmax(logits, dim=-1).reshape(bw * h, n, n)
        out = torch.bmm(attn, v).reshape(bw, h, n, d).permute(0, 2, 1, 3).reshape(bw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention + MLP on channels-last features (B, H, W, C)."""

    def __init__(self, config: FlexIRConfig, shift: int) -> None:
        super().__init__()
        self.window, self.shift = config.window, shift
        self.norm1 = ChannelLayerNorm(config.dim)
        self.attn = WindowAttention(config.dim, config.heads, config.window)
        self.norm2 = ChannelLayerNorm(config.dim)
        self.mlp = Mlp(config.dim, int(config.dim * config.mlp_ratio))
        self._masks: dict[tuple[int, int, str], torch.Tensor] = {}
        self.frozen_size: tuple[int, int] | None = None
        self.register_buffer("frozen_bias", None, persistent=False)
        self.register_buffer("frozen_row_mask", None, persistent=False)
        self.register_buffer("frozen_col_mask", None, persistent=False)

    def mask(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The shifted-window mask parts for this input size (computed once per size and cached)."""
        key = (height, width, str(device))
        if key not in self._masks:
            row, col = separable_window_masks(height, width, self.window, self.shift)
            self._masks[key] = (row.to(device), col.to(device))
        return self._masks[key]

    def attention_terms(self, height: int, width: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Relative-position bias (heads, N, N) and, for shifted blocks, the (row, column) mask parts.

        After :meth:`freeze` all are constant buffers for the export size. They stay separate:
        folded together they would take nW x heads x N^2 floats per block (100 MB per block for
        ``mobile`` at 256x256), while one pair of mask parts is shared by every shifted block.
        """
        if self.frozen_bias is not None:
            if (height, width) != self.frozen_size:
                raise ValueError(f"attention constants were frozen for {self.frozen_size}, input is {height}x{width}")
            mask = (self.frozen_row_mask, self.frozen_col_mask) if self.frozen_row_mask is not None else None
            return self.frozen_bias, mask
        bias = self.attn.position_bias()
        if self.shift and min(height, width) > self.window:
            return bias, self.mask(height, width, bias.device)
        return bias, None

    def freeze(self, height: int, width: int, masks: dict | None = None) -> None:
        """Turn bias (and mask) for ``height`` x ``width`` into constant buffers (export).

        ``masks`` shares one mask tensor between the blocks of a model.
        """
        with torch.no_grad():
            bias, mask = self.attention_terms(height, width)
            self.frozen_bias = bias.detach().clone().contiguous()
            if mask is not None:
                key = (height, width, self.window, self.shift)
                fresh = tuple(part.detach().clone().contiguous() for part in mask)
                self.frozen_row_mask, self.frozen_col_mask = masks.setdefault(key, fresh) if masks is not None \
                    else fresh
        self.frozen_size = (height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        # SwinIR disables the shift when the input is a single window.
        shift = self.shift if min(h, w) > self.window else 0
        y = self.norm1(x)
        if shift:
            y = cyclic_shift(y, -shift)
        y = self.attn(partition(y, self.window), *self.attention_terms(h, w))
        y = merge(y, self.window, b, h, w)
        if shift:
            y = cyclic_shift(y, shift)
        x = x + y
        return x + self.mlp(self.norm2(x))


class RSTB(nn.Module):
    """Residual Swin transformer group: ``depth`` blocks, a 3x3 conv, and a skip (NCHW in and out)."""

    def __init__(self, config: FlexIRConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(config, 0 if i % 2 == 0 else config.window // 2) for i in range(config.depth))
        self.conv = nn.Conv2d(config.dim, config.dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            y = block(y)
        return self.conv(y.permute(0, 3, 1, 2)) + x


class ExitHead(nn.Module):
    """The branch of one B-RSTB: SwinIR's tail (norm, conv_after_body, reconstruction) for the task.

    Denoise/JPEG: ``image + conv_last(conv_after_body(norm(f)) + shallow) / img_range``.
    SR: ``pixel_shuffle(conv_after_body(norm(f)) + shallow) / img_range + mean``.
    """

    def __init__(self, config: FlexIRConfig) -> None:
        super().__init__()
        self.upscale, self.img_range = config.upscale, config.img_range
        self.norm = ChannelLayerNorm(config.dim)
        self.conv_after_body = nn.Conv2d(config.dim, config.dim, 3, 1, 1)
        if config.upscale == 1:
            self.conv_last = nn.Conv2d(config.dim, config.in_chans, 3, 1, 1)
        else:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(config.dim, config.num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = _upsample(config.upscale, config.num_feat)
            self.conv_last = nn.Conv2d(config.num_feat, config.in_chans, 3, 1, 1)
        mean = torch.tensor(RGB_MEAN if config.in_chans == 3 else (0.0,) * config.in_chans)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)

    def forward(self, feature: torch.Tensor, shallow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        f = self.norm(feature.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        f = self.conv_after_body(f) + shallow
        if self.upscale == 1:
            return image + self.conv_last(f) / self.img_range
        return self.conv_last(self.upsample(self.conv_before_upsample(f))) / self.img_range + self.mean


def _upsample(scale: int, channels: int) -> nn.Sequential:
    """SwinIR's ``Upsample``: conv + PixelShuffle(2) per factor 2, or one conv + PixelShuffle(3)."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(channels, 4 * channels, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(channels, 9 * channels, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale {scale} is not supported; use 2, 3 or 4")
    return nn.Sequential(*layers)


class FlexIR(nn.Module):
    """FlexIR: SwinIR stem, ``groups`` RSTBs each followed by its own exit head (B-RSTB).

    ``forward(image, pointer=None)`` runs pointer P (default: ``default_pointer``, the full model).
    Staged use (adaptive inference): :meth:`stem`, :meth:`block`, :meth:`head`.
    """

    def __init__(self, config: FlexIRConfig) -> None:
        super().__init__()
        self.config = config
        self.default_pointer = config.groups
        self.conv_first = nn.Conv2d(config.in_chans, config.dim, 3, 1, 1)
        self.patch_norm = ChannelLayerNorm(config.dim)
        self.layers = nn.ModuleList(RSTB(config) for _ in range(config.groups))
        self.exits = nn.ModuleList(ExitHead(config) for _ in range(config.groups))
        mean = torch.tensor(RGB_MEAN if config.in_chans == 3 else (0.0,) * config.in_chans)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)
        self.apply(_init_weights)

    @property
    def size_multiple(self) -> int:
        return self.config.window

    def check_input(self, image: torch.Tensor) -> None:
        """Raise ValueError unless ``image`` is (B, in_chans, H, W) with H, W multiples of the window."""
        if image.dim() != 4 or image.shape[1] != self.config.in_chans:
            raise ValueError(f"FlexIR expects (B, {self.config.in_chans}, H, W); got {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if h % self.config.window or w % self.config.window:
            raise ValueError(f"FlexIR needs H and W multiples of its window ({self.config.window}); got {h}x{w}: "
                             "pad (reflect) and crop after")

    def check_pointer(self, pointer: int) -> int:
        if not 1 <= pointer <= self.config.groups:
            raise ValueError(f"pointer must be in 1..{self.config.groups}; got {pointer}")
        return pointer

    def stem(self, image: torch.Tensor) -> torch.Tensor:
        """Shallow feature ``e`` = conv_first((image - mean) * img_range), NCHW."""
        return self.conv_first((image - self.mean) * self.config.img_range)

    def block(self, k: int, feature: torch.Tensor) -> torch.Tensor:
        """Group k (1-based) as encoder: F_k from F_{k-1} (k = 1 takes the shallow feature)."""
        if k == 1:
            feature = self.patch_norm(feature.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.layers[k - 1](feature)

    def head(self, k: int, feature: torch.Tensor, shallow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Exit k: the restored image from F_k (switch on)."""
        return self.exits[k - 1](feature, shallow, image)

    def forward_features(self, image: torch.Tensor, pointer: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Shallow feature and F_1..F_pointer (for training and distillation)."""
        self.check_input(image)
        shallow = self.stem(image)
        feature, features = shallow, []
        for k in range(1, self.check_pointer(pointer) + 1):
            feature = self.block(k, feature)
            features.append(feature)
        return features, shallow

    def forward_all(self, image: torch.Tensor, pointer: int | None = None) -> tuple[list[torch.Tensor],
                                                                                     list[torch.Tensor]]:
        """Outputs and features of every exit 1..pointer (one pass; training)."""
        features, shallow = self.forward_features(image, pointer or self.default_pointer)
        outputs = [self.head(k, f, shallow, image) for k, f in enumerate(features, start=1)]
        return outputs, features

    def forward_exits(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every exit's restoration in one pass, cheapest first (``edgeir eval`` reports each)."""
        outputs, _ = self.forward_all(image, self.config.groups)
        return {f"exit_{k}": out for k, out in enumerate(outputs, start=1)}

    def forward(self, image: torch.Tensor, pointer: int | None = None) -> torch.Tensor:
        pointer = pointer or self.default_pointer
        features, shallow = self.forward_features(image, pointer)
        return self.head(pointer, features[-1], shallow, image)

    def modules_at_pointer(self, pointer: int) -> list[nn.Module]:
        """The modules on the active path of pointer P: stem, groups 1..P and exit P's head."""
        pointer = self.check_pointer(pointer)
        return [self.conv_first, self.patch_norm, *self.layers[:pointer], self.exits[pointer - 1]]

    def num_params_at_pointer(self, pointer: int) -> int:
        """Parameters on the active path of pointer P (Table 3's #Params)."""
        return sum(p.numel() for m in self.modules_at_pointer(pointer) for p in m.parameters())

    def macs_at_pointer(self, pointer: int, size: tuple[int, int], convention: str = "edgeir") -> int:
        """MACs of one forward pass with pointer P on a (1, C, H, W) input.

        Counted with :func:`edgeir.evaluation.macs.count_macs` per part (stem, one group, exit head) and summed:
        the groups share one configuration, so one group is counted per size and reused.

        Args:
            convention: ``"edgeir"``: convolutions, linear layers and matrix products, window
                attention's q@k and attn@v included. ``"paper"``: the same minus the attention
                products, which is how FlexIR's Table 3 counts (it then matches within 1%; with
                the products included the table is about 6% low).
        """
        pointer = self.check_pointer(pointer)
        parts = self._part_macs(tuple(size))
        macs = parts["stem"] + parts["patch_norm"] + pointer * parts["group"] + parts["head"]
        if convention == "paper":
            macs -= self.attention_product_macs(pointer, size)
        elif convention != "edgeir":
            raise ValueError(f"convention must be 'edgeir' or 'paper'; got {convention!r}")
        return macs

    def _part_macs(self, size: tuple[int, int]) -> dict[str, int]:
        from edgeir.evaluation.macs import count_macs

        cache = self.__dict__.setdefault("_macs_cache", {})
        if size not in cache:
            h, w = size
            c = self.config
            image = torch.zeros(1, c.in_chans, h, w)
            feature = torch.zeros(1, c.dim, h, w)
            was_training = self.training
            self.eval()
            try:
                cache[size] = {
                    "stem": count_macs(self.conv_first, image),
                    "patch_norm": count_macs(self.patch_norm, feature.permute(0, 2, 3, 1)),
                    "group": count_macs(self.layers[0], feature),
                    "head": count_macs(self.exits[0], feature, feature, image),
                }
            finally:
                self.train(was_training)
        return cache[size]

    def attention_product_macs(self, pointer: int, size: tuple[int, int]) -> int:
        """MACs of window attention's two matrix products (q@k^T, attn@v) for pointer P."""
        h, w = size
        per_block = 2 * h * w * self.config.window ** 2 * self.config.dim
        return per_block * self.config.depth * self.check_pointer(pointer)


def _init_weights(module: nn.Module) -> None:
    """SwinIR's initialisation: truncated normal (std 0.02) linear weights, zero biases, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def freeze_attention(model: nn.Module, height: int, width: int) -> nn.Module:
    """Fold every Swin block's bias (+ shifted-window mask) into a constant for ``height`` x ``width``.

    Output is unchanged; the exported graph then has no index gather and no mask arithmetic.
    """
    masks: dict = {}
    for module in model.modules():
        if isinstance(module, SwinBlock):
            module.freeze(height, width, masks)
    return model
