"""Convolutions and products: ``conv``, ``conv_transpose``, ``matmul``, ``linear``, ``einsum``.

Definitions followed: ``mil/ops/defs/iOS15/conv.py`` (``pad`` is ``[before_0, after_0, before_1,
after_1, ...]`` over the spatial axes; ``same`` pads ``total = max((ceil(d/s) - 1) * s + dk - d, 0)``
with the extra element after, ``same_lower`` before, as ``_utils.aggregated_pad`` totals it),
``iOS15/linear.py`` (``matmul`` with numpy batch broadcasting, ``transpose_x/y`` swap the last two
axes; ``linear`` is ``x @ weight^T + bias``); iOS 17 redefines neither.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgeir.targets.coreml.mil.ops import kernel


def _spatial(a, name: str, count: int, default: int) -> list[int]:
    found = a.ints(name)
    return found if found is not None else [default] * count


def _same_pads(sizes, kernel_sizes, strides, dilations, lower: bool) -> list[int]:
    pads = []
    for size, k, s, d in zip(sizes, kernel_sizes, strides, dilations, strict=True):
        dilated = (k - 1) * d + 1
        total = max((math.ceil(size / s) - 1) * s + dilated - size, 0)
        small, big = total // 2, total - total // 2
        pads += [big, small] if lower else [small, big]
    return pads


def _torch_pad(pads: list[int]) -> list[int]:
    """MIL's [b0, a0, b1, a1, ...] (first spatial axis first) as F.pad's (last axis first)."""
    out: list[int] = []
    for i in reversed(range(len(pads) // 2)):
        out += [pads[2 * i], pads[2 * i + 1]]
    return out


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@kernel("conv")
def conv(a):
    """N-d convolution; weight ``[C_out, C_in/groups, *K]``; ``pad_type`` valid / custom / same /
    same_lower (iOS15/conv.py, ``conv``)."""
    x, weight = a.tensor("x"), a.tensor("weight")
    n = x.dim() - 2
    strides, dilations = _spatial(a, "strides", n, 1), _spatial(a, "dilations", n, 1)
    pad_type = a.value("pad_type", "valid")
    if pad_type == "custom":
        pads = _spatial(a, "pad", 2 * n, 0)
    elif pad_type in ("same", "same_lower"):
        pads = _same_pads(list(x.shape[2:]), list(weight.shape[2:]), strides, dilations, pad_type == "same_lower")
    elif pad_type == "valid":
        pads = [0] * (2 * n)
    else:
        raise ValueError(f"conv pad_type {pad_type!r} is not one of valid, custom, same, same_lower")
    if any(pads):
        x = F.pad(x, _torch_pad(pads))
    bias = a.tensor("bias") if a.has("bias") else None
    return _CONV[n](x, weight, bias, stride=strides, dilation=dilations, groups=int(a.value("groups", 1)))


@kernel("conv_transpose")
def conv_transpose(a):
    """Transposed convolution; weight ``[C_in, C_out/groups, *K]``; ``pad`` crops the full output
    (before/after per axis); ``output_shape`` fixes ``D_out`` (iOS15/conv.py, ``conv_transpose``)."""
    x, weight = a.tensor("x"), a.tensor("weight")
    n = x.dim() - 2
    strides, dilations = _spatial(a, "strides", n, 1), _spatial(a, "dilations", n, 1)
    bias = a.tensor("bias") if a.has("bias") else None
    full = _CONV_T[n](x, weight, bias, stride=strides, dilation=dilations, groups=int(a.value("groups", 1)))
    pad_type = a.value("pad_type", "valid")
    out_shape = a.ints("output_shape")
    if out_shape is not None:
        targets = out_shape[-n:]
        crops = []
        for size, want in zip(full.shape[2:], targets, strict=True):
            extra = size - want
            crops += [extra // 2, extra - extra // 2]
    elif pad_type == "custom":
        crops = _spatial(a, "pad", 2 * n, 0)
    elif pad_type == "same":
        crops = []
        for size, d_in, s in zip(full.shape[2:], x.shape[2:], strides, strict=True):
            extra = size - d_in * s
            crops += [extra // 2, extra - extra // 2]
    else:
        crops = [0] * (2 * n)
    index = [slice(None), slice(None)]
    for i in range(n):
        index.append(slice(crops[2 * i], full.shape[2 + i] - crops[2 * i + 1]))
    return full[tuple(index)]


@kernel("matmul")
def matmul(a):
    """``x @ y`` with batch broadcasting; ``transpose_x`` / ``transpose_y`` swap the last two axes first;
    rank-1 operands as numpy (iOS15/linear.py, ``matmul``)."""
    x, y = a.tensor("x"), a.tensor("y")
    if a.value("transpose_x", False) and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if a.value("transpose_y", False) and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@kernel("linear")
def linear(a):
    """``x @ weight^T + bias``; weight ``[D_out, D_in]`` (iOS15/linear.py, ``linear``)."""
    bias = a.tensor("bias") if a.has("bias") else None
    return F.linear(a.tensor("x"), a.tensor("weight"), bias)


@kernel("einsum")
def einsum(a):
    """``einsum(equation, *values)`` (iOS15/linear.py, ``einsum``)."""
    return torch.einsum(a.value("equation"), *a.tensors("values"))
