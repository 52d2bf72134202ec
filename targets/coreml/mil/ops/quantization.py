"""Quantization and weight compression: ``quantize``, ``dequantize``, ``constexpr_affine_dequantize``,
``constexpr_lut_to_dense``, ``constexpr_blockwise_shift_scale``, ``constexpr_cast``.

Definitions followed: ``mil/ops/defs/iOS17/quantization_ops.py`` (``quantize`` rounds half to even, adds
``zero_point`` and saturates to ``output_dtype``; ``dequantize`` is ``(input - zero_point) * scale``;
per-axis ``scale``/``zero_point`` are vectors along ``axis``), ``iOS16/constexpr_ops.py``
(``constexpr_affine_dequantize``; ``constexpr_lut_to_dense``: n-bit indices packed LSB-first into bytes,
``n = log2(len(lut))``), ``iOS18/compression.py`` (``constexpr_lut_to_dense`` with unpacked indices and
per-block palettes; ``constexpr_blockwise_shift_scale``).
"""

from __future__ import annotations

import math

import torch

from edgeir.targets.coreml.mil.ops import kernel

_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
           "int4": (-8, 7), "uint4": (0, 15)}


def _along(param: torch.Tensor, rank: int, axis: int | None) -> torch.Tensor:
    """A scale/zero-point vector shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    if param.dim() == 0 or param.dim() == rank or axis is None:
        return param
    shape = [1] * rank
    shape[axis % rank] = -1
    return param.reshape(shape)


def _blockwise(param: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A same-rank block parameter repeated to ``shape`` (each entry covers ``shape[i] / param.shape[i]``)."""
    if param.dim() != len(shape):
        return param
    for dim, (have, want) in enumerate(zip(param.shape, shape, strict=True)):
        if have not in (1, want):
            param = param.repeat_interleave(want // have, dim=dim)
    return param


@kernel("quantize")
def quantize(a):
    """``clip(round_half_even(input / scale) + zero_point, range(output_dtype))`` (iOS17/quantization_ops.py,
    ``quantize``)."""
    x = a.tensor("input")
    axis = a.value("axis")
    scale = _along(a.tensor("scale").float(), x.dim(), axis)
    q = torch.round(x / scale)
    if a.has("zero_point"):
        q = q + _along(a.tensor("zero_point").float(), x.dim(), axis)
    low, high = _RANGES[a.value("output_dtype")]
    return q.clamp(low, high)


@kernel("dequantize")
def dequantize(a):
    """``(input - zero_point) * scale`` (iOS17/quantization_ops.py, ``dequantize``)."""
    x = a.tensor("input").float()
    axis = a.value("axis")
    if a.has("zero_point"):
        x = x - _along(a.tensor("zero_point").float(), x.dim(), axis)
    return x * _along(a.tensor("scale").float(), x.dim(), axis)


@kernel("constexpr_affine_dequantize")
def constexpr_affine_dequantize(a):
    """``(quantized_data - zero_point) * scale``, per-``axis`` vectors (iOS16/constexpr_ops.py,
    ``constexpr_affine_dequantize``)."""
    data = a.tensor("quantized_data").float()
    axis = int(a.value("axis"))
    zero = _along(a.tensor("zero_point").float(), data.dim(), axis)
    return (data - zero) * _along(a.tensor("scale").float(), data.dim(), axis)


def unpack_lsb_first(packed: torch.Tensor, nbits: int, count: int) -> torch.Tensor:
    """``count`` unsigned ``nbits``-bit values packed into bytes from the least significant bit upward,
    an index split across bytes continuing in the next byte's low bits (iOS16/constexpr_ops.py,
    ``constexpr_lut_to_dense``)."""
    bits = packed.to(torch.uint8).long()
    shifts = torch.arange(8, device=packed.device)
    stream = ((bits[:, None] >> shifts) & 1).reshape(-1)[: count * nbits].reshape(count, nbits)
    weights = 1 << torch.arange(nbits, device=packed.device)
    return (stream * weights).sum(dim=1)


@kernel("constexpr_lut_to_dense")
def constexpr_lut_to_dense(a):
    """Palettised weights: iOS 16/17 ``lut[indices]`` with packed ``indices`` and ``shape``; iOS 18 per-block
    palettes ``lut[..., NUM_PALETTES, VECTOR_SIZE]`` indexed by unpacked ``indices``
    (iOS16/constexpr_ops.py and iOS18/compression.py, ``constexpr_lut_to_dense``)."""
    lut = a.tensor("lut")
    if a.has("shape"):  # iOS 16/17 form
        shape = a.ints("shape")
        count = math.prod(shape)
        nbits = int(round(math.log2(lut.shape[0])))
        indices = unpack_lsb_first(a.tensor("indices"), nbits, count)
        return lut[indices].reshape(shape)
    indices = a.tensor("indices").long()  # iOS 18: indices keep the output's shape (vector axis aside)
    vector_size = lut.shape[-1]
    if vector_size != 1:
        from edgeir.targets.coreml.mil.interpreter import NotInterpreted

        raise NotInterpreted("op `constexpr_lut_to_dense` with vector palettes (VECTOR_SIZE > 1) is not interpreted; "
                             "numbers not checked")
    rank = indices.dim()
    blocks = [indices.shape[i] // lut.shape[i] for i in range(rank)]
    block_index = [torch.arange(indices.shape[i], device=indices.device) // blocks[i] for i in range(rank)]
    grids = torch.meshgrid(*block_index, indexing="ij")
    return lut[(*grids, indices, torch.zeros_like(indices))]


@kernel("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(a):
    """``(data - offset) * scale`` with block-repeated ``scale``/``offset`` (iOS18/compression.py,
    ``constexpr_blockwise_shift_scale``)."""
    data = a.tensor("data").float()
    if a.has("offset"):
        data = data - _blockwise(a.tensor("offset").float(), data.shape)
    return data * _blockwise(a.tensor("scale").float(), data.shape)


@kernel("constexpr_cast")
def constexpr_cast(a):
    """``source_val`` cast to ``output_dtype`` (iOS16/constexpr_ops.py, ``constexpr_cast``)."""
    return a.tensor("source_val")
