"""Shape and data-movement ops: reshape, transpose, concat, split, slicing, tile, squeeze, expand_dims,
gathers, pixel (un)shuffle, pad, fill, fill_like, shape, range_1d, band_part, cumsum, stack, identity.

Definitions followed: ``mil/ops/defs/iOS15/tensor_transformation.py`` and ``iOS15/tensor_operation.py``,
``iOS15/scatter_gather.py``, with the iOS 17 versions (``iOS17/tensor_transformation.py``: ``reshape``
keeps the ``0`` = copy-this-dimension and ``-1`` = infer rules; ``slice_by_index``/``slice_by_size``
take non-const ``begin``/``end``; ``iOS17/scatter_gather.py``: negative gather indices count from the end).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgeir.targets.coreml.mil.ops import kernel


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@kernel("reshape")
def reshape(a):
    """``x`` reshaped to ``shape``; ``0`` copies the input's dimension at that position, ``-1`` is inferred
    (iOS17/tensor_transformation.py, ``reshape``)."""
    x = a.tensor("x")
    shape = a.ints("shape")
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@kernel("transpose")
def transpose(a):
    """Axes of ``x`` permuted by ``perm`` (output axis i is input axis perm[i]) (iOS15/tensor_transformation.py,
    ``transpose``)."""
    return a.tensor("x").permute(a.ints("perm")).contiguous()


@kernel("concat")
def concat(a):
    """``values`` joined along ``axis``; with ``interleave`` the inputs alternate slice by slice along it
    (iOS15/tensor_operation.py, ``concat``)."""
    values = a.tensors("values")
    axis = _axis(int(a.value("axis")), values[0].dim())
    if a.value("interleave", False):
        return torch.stack(values, dim=axis + 1).flatten(axis, axis + 1)
    return torch.cat(values, dim=axis)


@kernel("stack")
def stack(a):
    """``values`` stacked on a new ``axis`` (iOS15/tensor_operation.py, ``stack``)."""
    values = a.tensors("values")
    return torch.stack(values, dim=_axis(int(a.value("axis")), values[0].dim() + 1))


@kernel("split")
def split(a):
    """``x`` cut along ``axis`` into ``num_splits`` equal parts or parts of ``split_sizes``
    (iOS15/tensor_operation.py, ``split``)."""
    x = a.tensor("x")
    axis = _axis(int(a.value("axis")), x.dim())
    sizes = a.ints("split_sizes")
    if sizes is None:
        count = int(a.value("num_splits"))
        sizes = [x.shape[axis] // count] * count
    return list(torch.split(x, sizes, dim=axis))


def _apply_slices(x: torch.Tensor, slices: list[slice]) -> torch.Tensor:
    """numpy slicing, negative strides included (torch slicing takes positive steps only)."""
    for dim, s in enumerate(slices):
        if s.step is not None and s.step < 0:
            index = torch.as_tensor(list(range(x.shape[dim]))[s], dtype=torch.long, device=x.device)
            x = x.index_select(dim, index)
            slices[dim] = slice(None)
    return x[tuple(slices)]


@kernel("slice_by_index")
def slice_by_index(a):
    """numpy ``x[begin:end:stride]`` per axis; ``begin_mask``/``end_mask`` ignore that bound, ``squeeze_mask``
    drops the axis (iOS17/tensor_transformation.py, ``slice_by_index``)."""
    x = a.tensor("x")
    rank = x.dim()
    begin, end = a.ints("begin"), a.ints("end")
    stride = a.ints("stride") or [1] * rank
    begin_mask = [bool(v) for v in np.asarray(a.value("begin_mask", [False] * rank)).reshape(-1)]
    end_mask = [bool(v) for v in np.asarray(a.value("end_mask", [False] * rank)).reshape(-1)]
    squeeze_mask = [bool(v) for v in np.asarray(a.value("squeeze_mask", [False] * rank)).reshape(-1)]
    slices = []
    for i in range(rank):
        if squeeze_mask[i]:
            index = begin[i] + x.shape[i] if begin[i] < 0 else begin[i]
            slices.append(slice(index, index + 1, 1))
            continue
        slices.append(slice(None if begin_mask[i] else begin[i], None if end_mask[i] else end[i], stride[i]))
    out = _apply_slices(x, slices)
    squeeze = [i for i in range(rank) if squeeze_mask[i]]
    return out.squeeze(squeeze) if squeeze else out


@kernel("slice_by_size")
def slice_by_size(a):
    """``x[begin : begin + size]`` per axis, ``size == -1`` to the end (iOS17/tensor_transformation.py,
    ``slice_by_size``)."""
    x = a.tensor("x")
    begin, size = a.ints("begin"), a.ints("size")
    slices = []
    for i, (b, s) in enumerate(zip(begin, size, strict=True)):
        b = b + x.shape[i] if b < 0 else b
        slices.append(slice(b, x.shape[i] if s == -1 else b + s))
    return x[tuple(slices)]


@kernel("tile")
def tile(a):
    """``x`` repeated ``reps[i]`` times along each axis, as ``np.tile`` (iOS15/tensor_operation.py, ``tile``)."""
    return a.tensor("x").repeat(a.ints("reps"))


@kernel("squeeze")
def squeeze(a):
    """Size-1 axes of ``x`` removed: those in ``axes``, or all when absent (iOS15/tensor_transformation.py,
    ``squeeze``)."""
    x = a.tensor("x")
    axes = a.ints("axes")
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    drop = {_axis(v, x.dim()) for v in axes}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@kernel("expand_dims")
def expand_dims(a):
    """Size-1 axes inserted at ``axes``, counted in the output's rank (iOS15/tensor_transformation.py,
    ``expand_dims``)."""
    x = a.tensor("x")
    axes = a.ints("axes")
    rank = x.dim() + len(axes)
    inserted = sorted(_axis(v, rank) for v in axes)
    shape = list(x.shape)
    for axis in inserted:
        shape.insert(axis, 1)
    return x.reshape(shape)


@kernel("gather")
def gather(a):
    """``x`` indexed by ``indices`` along ``axis``: output shape ``x.shape[:axis] + indices.shape[batch_dims:]
    + x.shape[axis+1:]``; negative indices count from the end (iOS17/scatter_gather.py, ``gather``)."""
    x, indices = a.tensor("x"), a.tensor("indices").long()
    axis = _axis(int(a.value("axis", 0)), x.dim())
    batch_dims = int(a.value("batch_dims", 0))
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    if batch_dims == 0:
        picked = x.index_select(axis, indices.reshape(-1))
        return picked.reshape(list(x.shape[:axis]) + list(indices.shape) + list(x.shape[axis + 1:]))
    batch = list(x.shape[:batch_dims])
    xs = x.reshape([-1] + list(x.shape[batch_dims:]))
    ids = indices.reshape([-1] + list(indices.shape[batch_dims:]))
    inner = axis - batch_dims
    parts = []
    for b in range(xs.shape[0]):
        picked = xs[b].index_select(inner, ids[b].reshape(-1))
        parts.append(picked.reshape(list(xs.shape[1:inner + 1]) + list(ids.shape[1:]) + list(xs.shape[inner + 2:])))
    return torch.stack(parts).reshape(batch + list(parts[0].shape))


@kernel("gather_along_axis")
def gather_along_axis(a):
    """``out[..i..] = x[..indices[..i..]..]`` along ``axis`` (as ``np.take_along_axis``; negative indices
    from the end) (iOS17/scatter_gather.py, ``gather_along_axis``)."""
    x, indices = a.tensor("x"), a.tensor("indices").long()
    axis = _axis(int(a.value("axis", 0)), x.dim())
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    return torch.gather(x, axis, indices)


@kernel("pixel_shuffle")
def pixel_shuffle(a):
    """``[N, C*r*r, H, W] -> [N, C, H*r, W*r]``, the channel index being ``c*r*r + i*r + j`` as in PyTorch
    (iOS15/tensor_transformation.py, ``pixel_shuffle``)."""
    return F.pixel_shuffle(a.tensor("x"), int(a.value("upscale_factor")))


@kernel("pixel_unshuffle")
def pixel_unshuffle(a):
    """Inverse of ``pixel_shuffle``: ``[N, C, H*r, W*r] -> [N, C*r*r, H, W]`` (iOS16/tensor_transformation.py,
    ``pixel_unshuffle``)."""
    return F.pixel_unshuffle(a.tensor("x"), int(a.value("downscale_factor")))


@kernel("pad")
def pad(a):
    """The last ``len(pad)/2`` axes padded ``pad[2i]`` before and ``pad[2i+1]`` after; modes constant
    (``constant_val``, default 0), reflect, replicate (iOS15/tensor_operation.py, ``pad``)."""
    x = a.tensor("x")
    pads = a.ints("pad")
    mode = a.value("mode", "constant")
    torch_pads: list[int] = []
    for i in reversed(range(len(pads) // 2)):
        torch_pads += [pads[2 * i], pads[2 * i + 1]]
    if mode == "constant":
        return F.pad(x, torch_pads, mode="constant", value=float(a.value("constant_val", 0.0)))
    if mode not in ("reflect", "replicate"):
        raise ValueError(f"pad mode {mode!r} is not one of constant, reflect, replicate")
    # F.pad pads reflect/replicate only on the trailing 1-3 axes of a batched tensor: add leading axes.
    extra = len(pads) // 2 + 2 - x.dim()
    y = x.reshape([1] * max(extra, 0) + list(x.shape)) if extra > 0 else x
    out = F.pad(y, torch_pads, mode=mode)
    return out.reshape(out.shape[max(extra, 0):]) if extra > 0 else out


@kernel("fill")
def fill(a):
    """A tensor of ``shape`` filled with ``value`` (default 0) (iOS15/tensor_operation.py, ``fill``)."""
    return torch.full(a.ints("shape"), float(a.value("value", 0.0)), device=a.device)


@kernel("shape")
def shape(a):
    """The shape of ``x`` as int32 (iOS15/tensor_operation.py, ``shape``)."""
    return torch.tensor(list(a.tensor("x").shape), dtype=torch.int32, device=a.device)


@kernel("range_1d")
def range_1d(a):
    """``[start, start + step, ...)`` below ``end`` (iOS15/tensor_operation.py, ``range_1d``)."""
    return torch.arange(a.value("start"), a.value("end"), a.value("step"), device=a.device)


@kernel("band_part")
def band_part(a):
    """Keeps ``x[..., i, j]`` where ``(lower < 0 or i - j <= lower) and (upper < 0 or j - i <= upper)``, zero
    elsewhere (iOS15/tensor_operation.py, ``band_part``)."""
    x = a.tensor("x")
    lower, upper = int(a.value("lower", -1)), int(a.value("upper", -1))
    rows = torch.arange(x.shape[-2], device=x.device)[:, None]
    cols = torch.arange(x.shape[-1], device=x.device)[None, :]
    keep = torch.ones_like(rows - cols, dtype=torch.bool)
    if lower >= 0:
        keep &= (rows - cols) <= lower
    if upper >= 0:
        keep &= (cols - rows) <= upper
    return torch.where(keep, x, torch.zeros_like(x))


@kernel("cumsum")
def cumsum(a):
    """Running sum along ``axis`` (default 0); ``exclusive`` shifts it by one, ``reverse`` runs from the end
    (iOS15/tensor_operation.py, ``cumsum``)."""
    x = a.tensor("x")
    axis = _axis(int(a.value("axis", 0)), x.dim())
    if a.value("reverse", False):
        x = x.flip(axis)
    out = torch.cumsum(x, dim=axis)
    if a.value("exclusive", False):
        out = out - x
    return out.flip(axis) if a.value("reverse", False) else out


@kernel("identity")
def identity(a):
    """``x`` unchanged (iOS15/tensor_operation.py, ``identity``)."""
    return a.tensor("x")


@kernel("reverse")
def reverse(a):
    """``x`` reversed along ``axes`` (all when absent) (iOS15/tensor_transformation.py, ``reverse``)."""
    x = a.tensor("x")
    axes = a.ints("axes")
    return x.flip(list(range(x.dim())) if axes is None else axes)


@kernel("fill_like")
def fill_like(a):
    """A tensor of ``ref_tensor``'s shape filled with ``value`` (default 0) (iOS16/tensor_operation.py,
    ``fill_like``)."""
    ref = a.tensor("ref_tensor")
    return torch.full(tuple(ref.shape), float(a.value("value", 0.0)), device=a.device)
