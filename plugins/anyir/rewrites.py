"""Export-time rewrites of an eval-mode :class:`~.model.AnyIR` (arXiv:2504.14249).

Every rewrite takes a model and returns a new one (a deep copy, in eval mode); the input is
never modified. Each keeps the eval-mode function unchanged up to float rounding, for any input
size that is a multiple of 8: nothing here bakes in H or W, so the result still exports with
dynamic spatial shapes (ONNX) and keeps every tensor at rank <= 5 (Core ML).

Why they exist: the eager model trains well but exports badly. Its BatchNorm is a separate op,
its frequency fusion needs ``torch.fft``, and several of its ops are not delegated to XNNPACK
(channel ``mean``, ``F.normalize``'s ``sum``, ``split_with_sizes``, strided channel slices,
``repeat_interleave``, 4-D ``matmul``'s ``expand``). Each of those would run on ExecuTorch's
slow portable kernels and cut the graph into many delegate islands.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeir.plugins._layers.feedforward import GatedFeedForward
from edgeir.plugins._layers.norm import BodyLayerNorm

from .model import (
    AddFusion,
    DegradationAdaptationBlock,
    DualPathAttention,
    GatedDegradationAdaptation,
    tile_channels,
)

__all__ = [
    "ChannelAffine",
    "EXPORT_REWRITES",
    "delegate_friendly",
    "fft_fusion_to_add",
    "fold_batchnorm",
]

_Rewrite = Callable[[nn.Module], nn.Module]


def _eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval()


# --------------------------------------------------------------------------------------------
# fold_batchnorm
# --------------------------------------------------------------------------------------------


class ChannelAffine(nn.Module):
    """Per-channel ``x * scale + shift`` on NCHW tensors (an eval-mode BatchNorm, folded)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().reshape(1, -1, 1, 1).clone())
        self.register_buffer("shift", shift.detach().reshape(1, -1, 1, 1).clone())

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d) -> ChannelAffine:
        """The affine map an eval-mode ``bn`` applies (running statistics)."""
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("cannot fold a BatchNorm2d without running statistics")
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        return cls(scale, shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _as_affine(norm: nn.Module) -> ChannelAffine:
    if isinstance(norm, ChannelAffine):
        return norm
    if isinstance(norm, nn.BatchNorm2d):
        return ChannelAffine.from_batchnorm(norm)
    raise TypeError(f"expected BatchNorm2d or ChannelAffine in the gated branch, got {type(norm).__name__}")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Replace each GatedDA BatchNorm by the per-channel affine of its running statistics.

    The affine is kept as a separate mul/add rather than folded into ``W_exp`` because the
    normalised tensor itself feeds the gate statistics and is not consumed only by a conv.
    """
    model = _eval_copy(model)
    for module in model.modules():
        if isinstance(module, GatedDegradationAdaptation):
            module.norm = _as_affine(module.norm)
    return model


# --------------------------------------------------------------------------------------------
# fft_fusion_to_add
# --------------------------------------------------------------------------------------------


def fft_fusion_to_add(model: nn.Module) -> nn.Module:
    """Replace ``irfft2(rfft2(a) + rfft2(b), s=(H, W))`` by the equal ``a + b``.

    The Fourier transform is linear and ``irfft2(rfft2(x), s=x.shape[-2:])`` is the identity on
    real inputs, so this changes values only by FFT rounding (~1e-6), and removes the only ops
    that Core ML, XNNPACK and most mobile runtimes cannot run.
    """
    model = _eval_copy(model)
    for module in model.modules():
        if isinstance(module, DualPathAttention):
            module.frequency_fusion = AddFusion()
    return model


# --------------------------------------------------------------------------------------------
# delegate_friendly
# --------------------------------------------------------------------------------------------


def _conv(weight: torch.Tensor, bias: torch.Tensor | None = None, groups: int = 1) -> nn.Conv2d:
    """A Conv2d ('same' padding, stride 1) holding copies of the given weight and bias."""
    out_ch, in_per_group, kh, kw = weight.shape
    conv = nn.Conv2d(
        in_per_group * groups,
        out_ch,
        (kh, kw),
        padding=(kh // 2, kw // 2),
        groups=groups,
        bias=bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv.requires_grad_(False)


def _bias_or_zeros(conv: nn.Conv2d) -> torch.Tensor:
    return conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)


def _select(indices: torch.Tensor, n: int) -> torch.Tensor:
    """0/1 matrix ``S`` of shape ``(len(indices), n)`` with ``S @ x == x[indices]``."""
    s = torch.zeros(len(indices), n)
    s[torch.arange(len(indices)), indices] = 1.0
    return s


class DelegatedChannelNorm(nn.Module):
    """The normalising part of AnyIR's :class:`~edgeir.plugins._layers.norm.BodyLayerNorm`, without its affine.

    Channel mean and variance are 1x1 convolutions with weights ``1/C`` (XNNPACK does not
    delegate ``mean`` over channels); their one-channel results broadcast over C. The affine
    ``w, b`` is folded into the convolutions that consume the output.
    """

    def __init__(self, norm: BodyLayerNorm) -> None:
        super().__init__()
        channels = norm.body.weight.numel()
        self.centre_output = norm.body.centred
        self.eps = float(norm.body.eps)
        self.mean = _conv(torch.full((1, channels, 1, 1), 1.0 / channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self.mean(x)
        inv_std = torch.rsqrt(self.mean(centred * centred) + self.eps)
        return (centred if self.centre_output else x) * inv_std


def _layernorm_affine(norm: BodyLayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    weight = norm.body.weight.detach()
    bias = norm.body.bias.detach() if norm.body.bias is not None else torch.zeros_like(weight)
    return weight, bias


def _fold_input_affine(
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    rows: torch.Tensor,
    in_channels: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``x -> conv((x * scale + shift)[:, rows])`` as one 1x1 conv on all of ``x``.

    ``conv_weight`` is ``(out, len(rows), 1, 1)``; ``scale``/``shift`` have ``in_channels``
    entries. Returns ``(out, in_channels, 1, 1)`` weights and an ``(out,)`` bias.
    """
    w = conv_weight.detach()[:, :, 0, 0]
    select = _select(rows, in_channels)
    weight = w @ (select * scale[None, :])
    bias = conv_bias + w @ shift[rows]
    return weight[:, :, None, None], bias


class DelegatedGatedDA(nn.Module):
    """:class:`~.model.GatedDegradationAdaptation` in eval mode, with XNNPACK-delegated ops only.

    BatchNorm becomes a per-channel affine, ``torch.split`` becomes three convolutions, and the
    tiled ``tau`` broadcast becomes a 1x1 convolution (with ``tau`` in its weights and bias 1) on
    the ``(B, C, 1, 1)`` gate, giving ``1 + tau_adj`` for the alpha channels directly.
    """

    def __init__(self, gated: GatedDegradationAdaptation) -> None:
        super().__init__()
        n_gamma, n_beta, n_alpha = gated.split_sizes
        channels = n_gamma
        self.norm = _as_affine(gated.norm)
        self.eps = float(gated.eps)
        w_exp = gated.W_exp.weight.detach()
        self.W_gamma = _conv(w_exp[:n_gamma])
        self.W_beta = _conv(w_exp[n_gamma : n_gamma + n_beta])
        self.W_alpha = _conv(w_exp[n_gamma + n_beta :])
        self.W_depth = _conv(gated.W_depth.weight.detach(), groups=n_alpha)
        self.W_gate = _conv(gated.W_gate.weight.detach())
        self.W_proj = _conv(gated.W_proj.weight.detach())
        # alpha channel j is scaled by 1 + tau[i] * delta[i] with i = j mod C (the eager tiling).
        source = tile_channels(torch.arange(channels, dtype=torch.float32).reshape(1, -1, 1, 1), n_alpha)
        rows = source.flatten().long()
        tau = gated.tau.detach().flatten()
        self.alpha_scale = _conv(
            (_select(rows, channels) * tau[rows, None])[:, :, None, None], torch.ones(n_alpha)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_hat = self.norm(x)
        mu = f_hat.mean(dim=(2, 3), keepdim=True)
        centred = f_hat - mu
        sigma = torch.sqrt((centred * centred).mean(dim=(2, 3), keepdim=True) + self.eps)
        alpha_scale = self.alpha_scale(torch.sigmoid(mu + sigma))
        alpha = self.W_depth(self.W_alpha(f_hat)) * alpha_scale
        gated = torch.sigmoid(self.W_gamma(f_hat)) * self.W_gate(
            torch.cat([self.W_beta(f_hat), alpha], dim=1)
        )
        return self.W_proj(gated + x)


class DelegatedAttention(nn.Module):
    """LayerNorm-affine + channel split + :class:`~.model.DualPathAttention`, delegated ops only.

    Takes the *unscaled* normalised block input (see :class:`DelegatedChannelNorm`):

    * the LayerNorm affine and the even/odd channel selection fold into the first 1x1 conv of
      each path (q, k, v and the gated input), and ``chunk`` becomes separate q/k/v convs;
    * ``F.normalize`` folds into the attention logits: ``q_i . k_j / (|q_i| |k_j|)`` with
      ``|q_i|^2 = H * W * mean(q_i^2)`` (spatial ``mean`` is delegated, ``sum`` is not), and the
      temperature joins the per-row factor; attention uses 3-D ``bmm`` (4-D ``matmul`` adds a
      non-delegated ``expand``);
    * the spatial-frequency fusion ``lam * cat[a + s(g), g + s(a)] + (1 - lam) * rep2(a + g)``
      followed by ``project_out`` is linear in ``(a, g, s(a), s(g))``, so it is one 1x1 conv
      over their concatenation.
    """

    def __init__(self, attn: DualPathAttention, norm: BodyLayerNorm) -> None:
        super().__init__()
        channels = attn.project_out.in_channels
        half = channels // 2
        even = torch.arange(0, channels, 2)
        odd = torch.arange(1, channels, 2)
        ln_w, ln_b = _layernorm_affine(norm)

        self.num_heads = attn.num_heads
        qkv_w, qkv_b = attn.qkv.weight.detach(), _bias_or_zeros(attn.qkv)
        dw_w, dw_b = attn.qkv_dwconv.weight.detach(), _bias_or_zeros(attn.qkv_dwconv)
        has_dw_bias = attn.qkv_dwconv.bias is not None
        projections, depthwise = [], []
        for part in range(3):
            rows = slice(part * half, (part + 1) * half)
            projections.append(
                _conv(*_fold_input_affine(qkv_w[rows], qkv_b[rows], ln_w, ln_b, even, channels))
            )
            depthwise.append(_conv(dw_w[rows], dw_b[rows] if has_dw_bias else None, groups=half))
        self.to_q, self.to_k, self.to_v = projections
        self.dw_q, self.dw_k, self.dw_v = depthwise
        # Temperature of head h, repeated over that head's channels, as a (1, C/2, 1, 1) factor.
        per_head = half // attn.num_heads
        temperature = attn.temperature.detach().flatten().repeat_interleave(per_head)
        self.register_buffer("temperature", temperature.reshape(1, half, 1, 1))

        identity = torch.eye(half)[:, :, None, None]
        self.to_gate = _conv(*_fold_input_affine(identity, torch.zeros(half), ln_w, ln_b, odd, channels))
        self.gatedcnn = DelegatedGatedDA(attn.gatedcnn)
        self.fuse = self._fusion_conv(attn)

    @staticmethod
    def _fusion_conv(attn: DualPathAttention) -> nn.Conv2d:
        """``project_out`` of the fusion, as one conv over ``cat[a, g, sigmoid(a), sigmoid(g)]``."""
        lam = attn.lam.detach()
        p = attn.project_out.weight.detach()[:, :, 0, 0]
        half = p.shape[1] // 2
        p_first, p_second = p[:, :half], p[:, half:]
        p_interleaved = p[:, 0::2] + p[:, 1::2]  # project_out after repeat_interleave(2)
        weight = torch.cat(
            [
                lam * p_first + (1 - lam) * p_interleaved,  # a
                lam * p_second + (1 - lam) * p_interleaved,  # g
                lam * p_second,  # sigmoid(a)
                lam * p_first,  # sigmoid(g)
            ],
            dim=1,
        )
        bias = attn.project_out.bias.detach() if attn.project_out.bias is not None else None
        return _conv(weight[:, :, None, None], bias)

    def channel_attention(self, normed: torch.Tensor) -> torch.Tensor:
        q = self.dw_q(self.to_q(normed))
        k = self.dw_k(self.to_k(normed))
        v = self.dw_v(self.to_v(normed))
        b, c, h, w = q.shape
        pixels = torch.sym_float(h * w)
        # 1 / max(|row|, 1e-12), exactly as F.normalize, from a delegated spatial mean.
        q_scale = torch.rsqrt(((q * q).mean(dim=(2, 3), keepdim=True) * pixels).clamp_min(1e-24))
        k_scale = torch.rsqrt(((k * k).mean(dim=(2, 3), keepdim=True) * pixels).clamp_min(1e-24))
        q_scale = q_scale * self.temperature
        heads, per_head = self.num_heads, c // self.num_heads
        rows = (b * heads, per_head, h * w)
        logits = torch.bmm(q.reshape(rows), k.reshape(rows).transpose(1, 2))
        logits = logits * q_scale.reshape(b * heads, per_head, 1) * k_scale.reshape(b * heads, 1, per_head)
        return torch.bmm(torch.softmax(logits, dim=-1), v.reshape(rows)).reshape(b, c, h, w)

    def forward(self, normed: torch.Tensor) -> torch.Tensor:
        a = self.channel_attention(normed)
        g = self.gatedcnn(self.to_gate(normed))
        return self.fuse(torch.cat([a, g, torch.sigmoid(a), torch.sigmoid(g)], dim=1))


class DelegatedFeedForward(nn.Module):
    """LayerNorm-affine + the block's :class:`~edgeir.plugins._layers.feedforward.GatedFeedForward`, with
    ``chunk`` split into two paths."""

    def __init__(self, ffn: GatedFeedForward, norm: BodyLayerNorm) -> None:
        super().__init__()
        channels = ffn.project_in.in_channels
        hidden = ffn.project_out.in_channels
        ln_w, ln_b = _layernorm_affine(norm)
        all_channels = torch.arange(channels)
        w_in, b_in = ffn.project_in.weight.detach(), _bias_or_zeros(ffn.project_in)
        w_dw = ffn.dwconv.weight.detach()
        has_dw_bias = ffn.dwconv.bias is not None
        b_dw = _bias_or_zeros(ffn.dwconv)
        halves = (slice(0, hidden), slice(hidden, 2 * hidden))
        self.in_gelu, self.in_linear = (
            _conv(*_fold_input_affine(w_in[r], b_in[r], ln_w, ln_b, all_channels, channels)) for r in halves
        )
        self.dw_gelu, self.dw_linear = (
            _conv(w_dw[r], b_dw[r] if has_dw_bias else None, groups=hidden) for r in halves
        )
        self.project_out = copy.deepcopy(ffn.project_out).requires_grad_(False)

    def forward(self, normed: torch.Tensor) -> torch.Tensor:
        gate = F.gelu(self.dw_gelu(self.in_gelu(normed)))
        return self.project_out(gate * self.dw_linear(self.in_linear(normed)))


class DelegatedBlock(nn.Module):
    """A Degradation Adaptation Block built only from XNNPACK-delegated ops (eval mode)."""

    def __init__(self, block: DegradationAdaptationBlock) -> None:
        super().__init__()
        self.norm1 = DelegatedChannelNorm(block.norm1)
        self.attn = DelegatedAttention(block.attn, block.norm1)
        self.norm2 = DelegatedChannelNorm(block.norm2)
        self.ffn = DelegatedFeedForward(block.ffn, block.norm2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def delegate_friendly(model: nn.Module) -> nn.Module:
    """Rebuild every block from ops XNNPACK delegates, keeping the eval-mode math.

    Folds BatchNorm and replaces the FFT fusion by its exact add on the way, so it may run on
    its own, but :data:`EXPORT_REWRITES` applies it last. The result is for inference only.
    """
    model = _eval_copy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, DegradationAdaptationBlock):
                setattr(parent, name, DelegatedBlock(child).eval())
    return model


#: Rewrites in the order to apply them: ``(name, function, one-line description)``.
EXPORT_REWRITES: tuple[tuple[str, _Rewrite, str], ...] = (
    ("fold_batchnorm", fold_batchnorm, "GatedDA BatchNorm -> per-channel affine from running stats"),
    ("fft_fusion_to_add", fft_fusion_to_add, "irfft2(rfft2(a) + rfft2(b)) -> a + b (exact by linearity)"),
    (
        "delegate_friendly",
        delegate_friendly,
        "LayerNorm, normalize, chunk/split, strided slices, fusion -> convs/bmm/spatial means",
    ),
)
