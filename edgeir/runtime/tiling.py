"""Tiled inference for images of any size: overlapping tiles, feathered blending, SR-aware.

Pure numpy (no torch), so the eager reference and every artifact runner share it. A tile program
sees tiles of its own shape; the tiler

* pads the image by reflection where it is smaller than a tile (``symmetric`` and then ``edge``
  where the image is too small to reflect, down to 1x1), and crops the result back;
* places tiles evenly so that neighbours overlap by at least ``overlap`` pixels and the last tile
  ends on the image border (no padding is needed for sizes that are not multiples);
* blends overlaps with linear ramps (feathering) in output coordinates (``scale`` times the input
  ones for super-resolution), accumulating ``sum(w * out)`` and ``sum(w)`` in float32 buffers of
  the output size, then normalising, so an identity program reproduces its input to float32
  rounding and a constant image stays constant.

Memory is one float32 accumulator of the output size plus one weight plane and one tile; an
integer image (uint8/uint16 as read from disk) is converted to float one tile at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RunTile = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one image go.

    Args:
        height: Image height (before padding).
        width: Image width (before padding).
        tile: (tile height, tile width) the program takes.
        overlap: Least overlap of neighbouring tiles, in input pixels.
        scale: Output size over input size.
        rows: Top of every tile row, in padded input coordinates.
        cols: Left of every tile column, in padded input coordinates.
    """

    height: int
    width: int
    tile: tuple[int, int]
    overlap: int
    scale: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def padded(self) -> tuple[int, int]:
        """(H, W) after padding the image up to at least one tile."""
        return max(self.height, self.tile[0]), max(self.width, self.tile[1])

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.cols)


def _positions(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    if length <= tile:
        return (0,)
    step = tile - overlap
    count = math.ceil((length - overlap) / step)
    # Evenly spread from 0 to length - tile: every gap is <= step, so every overlap is >= overlap.
    return tuple(int(p) for p in np.round(np.linspace(0, length - tile, count)).astype(int))


def plan_tiles(height: int, width: int, tile: tuple[int, int], overlap: int, multiple: int = 1,
               scale: int = 1) -> TilePlan:
    """Plan the tiles covering a ``height`` x ``width`` image.

    Args:
        height: Image height, at least 1.
        width: Image width, at least 1.
        tile: (H, W) of one tile, as the program takes it.
        overlap: Least overlap of neighbouring tiles in input pixels (clamped to half a tile).
        multiple: Tile H and W must be multiples of this.
        scale: Output size over input size (super-resolution).

    Raises:
        ValueError: if a size is not positive or the tile is not a multiple of ``multiple``,
            because the program could not take such tiles.
    """
    th, tw = int(tile[0]), int(tile[1])
    if height < 1 or width < 1 or th < 1 or tw < 1 or scale < 1 or multiple < 1 or overlap < 0:
        raise ValueError(f"cannot tile a {width}x{height} image with {tw}x{th} tiles, overlap {overlap}, "
                         f"scale {scale}, multiple {multiple}: sizes must be positive")
    if th % multiple or tw % multiple:
        raise ValueError(f"tile {tw}x{th} is not a multiple of {multiple}")
    overlap = min(overlap, th // 2, tw // 2)
    return TilePlan(height, width, (th, tw), overlap, scale,
                    _positions(max(height, th), th, overlap), _positions(max(width, tw), tw, overlap))


def _ramp(length: int, ramp: int, before: bool, after: bool) -> np.ndarray:
    """1-D blending weights of one tile: linear ramps on the sides that have a neighbour."""
    weights = np.ones(length, dtype=np.float32)
    if ramp <= 0:
        return weights
    rising = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp  # strictly positive
    if before:
        weights[:ramp] = np.minimum(weights[:ramp], rising)
    if after:
        weights[length - ramp:] = np.minimum(weights[length - ramp:], rising[::-1])
    return weights


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an HxWxC image at the bottom and right up to ``height`` x ``width``.

    Reflection where the image is large enough, mirror-with-edge (``symmetric``) where it is only
    one reflection too small, and edge repetition for tiny images (1x1 included).
    """
    h, w = image.shape[:2]
    pad_h, pad_w = max(0, height - h), max(0, width - w)
    if not pad_h and not pad_w:
        return image
    padding = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2)
    if pad_h < h and pad_w < w:
        return np.pad(image, padding, mode="reflect")
    if pad_h <= h and pad_w <= w:
        return np.pad(image, padding, mode="symmetric")
    return np.pad(image, padding, mode="edge")


def _to_float(tile: np.ndarray) -> np.ndarray:
    if np.issubdtype(tile.dtype, np.integer):
        return tile.astype(np.float32) / np.float32(np.iinfo(tile.dtype).max)
    return tile.astype(np.float32, copy=False)


def restore_tiled(image_hwc: np.ndarray, run_tile: RunTile, tile: tuple[int, int] | int, overlap: int,
                  multiple: int = 1, scale: int = 1, progress=None) -> np.ndarray:
    """Run ``run_tile`` over overlapping tiles of an image and blend the outputs.

    Args:
        image_hwc: HxWxC image: float in [0, 1], or uint8/uint16 (converted per tile).
        run_tile: Maps a 1xCxTHxTW float32 tile to its 1xC'x(TH*scale)x(TW*scale) output.
        tile: (H, W) of the program's tiles (an int for square tiles).
        overlap: Least overlap between neighbouring tiles, in input pixels.
        multiple: Tile sizes must be multiples of this.
        scale: Output size over input size.
        progress: Optional bar with ``update(n)`` (e.g. :func:`edgeir.progress.progress_bar`),
            advanced once per tile; its ``total`` is set to the number of tiles when it has one.

    Returns:
        (H*scale)x(W*scale)xC' float32 image.

    Raises:
        ValueError: if the tile does not fit ``multiple``, or ``run_tile`` returns a shape other
            than the tile's scaled shape (the program and the tiling disagree).
    """
    if isinstance(tile, int):
        tile = (tile, tile)
    if image_hwc.ndim == 2:
        image_hwc = image_hwc[:, :, None]
    height, width = image_hwc.shape[:2]
    plan = plan_tiles(height, width, tile, overlap, multiple, scale)
    th, tw = plan.tile
    padded = pad_to(image_hwc, *plan.padded)
    s = plan.scale
    if progress is not None and getattr(progress, "total", 0) is None:
        progress.total = plan.count
        if hasattr(progress, "refresh"):
            progress.refresh()
    ramp = plan.overlap * s
    acc: np.ndarray | None = None
    # Only rows and columns inside the (unpadded) image are accumulated; padding is cropped.
    out_h, out_w = height * s, width * s
    weight_sum = np.zeros((out_h, out_w, 1), dtype=np.float32)
    for i, top in enumerate(plan.rows):
        wy = _ramp(th * s, ramp, i > 0, i < len(plan.rows) - 1)
        for j, left in enumerate(plan.cols):
            wx = _ramp(tw * s, ramp, j > 0, j < len(plan.cols) - 1)
            piece = _to_float(padded[top:top + th, left:left + tw])
            batch = np.ascontiguousarray(piece.transpose(2, 0, 1)[None])
            result = np.asarray(run_tile(batch))
            expected = (th * s, tw * s)
            if result.ndim != 4 or result.shape[0] != 1 or tuple(result.shape[2:]) != expected:
                raise ValueError(f"a {tw}x{th} tile gave an output of shape {tuple(result.shape)}; expected "
                                 f"1xCx{expected[0]}x{expected[1]} (scale {s})")
            if acc is None:
                acc = np.zeros((out_h, out_w, result.shape[1]), dtype=np.float32)
            y0, x0 = top * s, left * s
            y1, x1 = min(y0 + th * s, out_h), min(x0 + tw * s, out_w)
            if y1 > y0 and x1 > x0:
                w = (wy[:y1 - y0, None] * wx[None, :x1 - x0])[:, :, None]
                out = result[0, :, :y1 - y0, :x1 - x0].transpose(1, 2, 0)
                acc[y0:y1, x0:x1] += w * out
                weight_sum[y0:y1, x0:x1] += w
            if progress is not None:
                progress.update(1)
    assert acc is not None
    acc /= weight_sum
    return acc


def dynamic_tile(height: int, width: int, multiple: int, minimum: int, maximum: int,
                 preferred: int = 512) -> tuple[int, int]:
    """Tile size for a program with dynamic H/W: the whole image when it fits, else ``preferred``.

    Each side is rounded up to ``multiple`` and kept within [``minimum``, ``maximum``].
    """
    def side(size: int) -> int:
        cap = max(multiple, min(preferred, maximum) // multiple * multiple)
        wanted = min(-(-size // multiple) * multiple, cap)
        low = -(-minimum // multiple) * multiple
        return max(wanted, low)

    return side(height), side(width)
