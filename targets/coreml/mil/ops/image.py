"""Resizing: ``upsample_nearest_neighbor``, ``resize_nearest_neighbor``, ``upsample_bilinear``, ``resize_bilinear``.

Definitions followed: ``mil/ops/defs/iOS15/image_resizing.py`` and ``iOS16/image_resizing.py``
(``upsample_bilinear``'s ``half_pixel_centers``, default ``not align_corners``); the sampling grids
of ``resize_bilinear``'s ``sampling_mode`` are the definition's formulas, evaluated here exactly.
"""

from __future__ import annotations

import math

import torch

from edgeir.targets.coreml.mil.ops import kernel


def _lerp_axis(x: torch.Tensor, axis: int, grid: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``axis`` at (clamped) source coordinates ``grid``."""
    size = x.shape[axis]
    grid = grid.clamp(0, size - 1)
    low = grid.floor().long()
    high = (low + 1).clamp(max=size - 1)
    weight = (grid - low).to(x.dtype)
    shape = [1] * x.dim()
    shape[axis] = -1
    weight = weight.reshape(shape)
    return x.index_select(axis, low) * (1 - weight) + x.index_select(axis, high) * weight


def _grid(mode: str, size_in: int, size_out: int, device) -> torch.Tensor:
    i = torch.arange(size_out, dtype=torch.float64, device=device)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            return torch.full_like(i, (size_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        return i * ((size_in - 1) / (size_out - 1))
    if mode == "DEFAULT":
        spacing = (size_in - size_in / size_out) / (size_out - 1) if size_out > 1 else 0.0
        return i * spacing
    if mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        return 0.5 * delta + i * delta
    if mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        return i * spacing + 0.5 * spacing - 0.5
    raise ValueError(f"sampling_mode {mode!r} is not one of the definition's five")


def _bilinear(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    y = _lerp_axis(x, x.dim() - 2, _grid(mode, x.shape[-2], out_h, x.device))
    return _lerp_axis(y, x.dim() - 1, _grid(mode, x.shape[-1], out_w, x.device))


@kernel("upsample_bilinear")
def upsample_bilinear(a):
    """Bilinear upsampling of the last two axes by ``scale_factor_height/width`` (default 1); ``align_corners``
    (default True) maps corner to corner; else ``half_pixel_centers`` (default ``not align_corners``) uses
    ``(i + 0.5) / scale - 0.5``, and without it ``i / scale`` (iOS16/image_resizing.py, ``upsample_bilinear``)."""
    x = a.tensor("x")
    sh, sw = float(a.value("scale_factor_height", 1)), float(a.value("scale_factor_width", 1))
    align = bool(a.value("align_corners", True))
    half = bool(a.value("half_pixel_centers", not align))
    out_h, out_w = math.floor(x.shape[-2] * sh), math.floor(x.shape[-1] * sw)
    if align:
        return _bilinear(x, out_h, out_w, "STRICT_ALIGN_CORNERS")
    grids = []
    for size_out, scale in ((out_h, sh), (out_w, sw)):
        i = torch.arange(size_out, dtype=torch.float64, device=x.device)
        grids.append((i + 0.5) / scale - 0.5 if half else i / scale)
    y = _lerp_axis(x, x.dim() - 2, grids[0])
    return _lerp_axis(y, x.dim() - 1, grids[1])


@kernel("resize_bilinear")
def resize_bilinear(a):
    """Bilinear resize of the last two axes to ``target_size_height/width`` on the grid of ``sampling_mode``
    (default ``DEFAULT``) (iOS15/image_resizing.py, ``resize_bilinear``)."""
    x = a.tensor("x")
    out_h = int(a.value("target_size_height", 1))
    out_w = int(a.value("target_size_width", 1))
    return _bilinear(x, out_h, out_w, a.value("sampling_mode", "DEFAULT"))


def _nearest(x: torch.Tensor, out_h: int, out_w: int, scale_h: float, scale_w: float) -> torch.Tensor:
    rows = (torch.arange(out_h, device=x.device, dtype=torch.float64) / scale_h).floor().long()
    cols = (torch.arange(out_w, device=x.device, dtype=torch.float64) / scale_w).floor().long()
    rows, cols = rows.clamp(max=x.shape[-2] - 1), cols.clamp(max=x.shape[-1] - 1)
    return x.index_select(x.dim() - 2, rows).index_select(x.dim() - 1, cols)


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(a):
    """Nearest-neighbour upsampling of the last two axes: output ``floor(H * scale)``, source index
    ``floor(i / scale)`` (iOS15/image_resizing.py, ``upsample_nearest_neighbor``; float scales from iOS 16)."""
    x = a.tensor("x")
    sh, sw = float(a.value("scale_factor_height", 1)), float(a.value("scale_factor_width", 1))
    return _nearest(x, math.floor(x.shape[-2] * sh), math.floor(x.shape[-1] * sw), sh, sw)


@kernel("resize_nearest_neighbor")
def resize_nearest_neighbor(a):
    """Nearest-neighbour resize to ``target_size_height/width``, source index ``floor(i * H_in / H_out)``
    (iOS15/image_resizing.py, ``resize_nearest_neighbor``)."""
    x = a.tensor("x")
    out_h, out_w = int(a.value("target_size_height")), int(a.value("target_size_width"))
    return _nearest(x, out_h, out_w, out_h / x.shape[-2], out_w / x.shape[-1])
