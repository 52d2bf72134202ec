"""Local operators of TLC, written for export: every window coordinate is a Python int.

For a fixed input shape (exported programs are static when TLC is on), all sizes, offsets and
overlap counts below are constants, so the graph holds only slices, pads, pools and adds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .windows import window_starts

__all__ = ["LocalAvgPool2d", "covers", "integral_box_mean", "local_mean", "local_variance", "use_integral_means",
           "windowed"]


def covers(kernel: tuple[int, int], height: int, width: int) -> bool:
    """Whether a window of ``kernel`` spans the whole ``height x width`` map (local == global there)."""
    return kernel[0] >= height and kernel[1] >= width


def integral_box_mean(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Stride-1 ``kh x kw`` box mean over the valid positions, from an integral image (``cumsum``).

    O(HW) whatever the window, as the official code and the paper's prefix-sum trick: the way to
    run large windows on runtimes whose pooling costs O(k) per output (ExecuTorch's portable
    ``avg_pool2d`` is not delegated to XNNPACK for these shapes). float32 only: the running sums
    grow with H x W, which float16 (Core ML's default) cannot hold precisely.
    """
    s = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    box = s[..., kh:, kw:] + s[..., :-kh, :-kw] - s[..., kh:, :-kw] - s[..., :-kh, kw:]
    return box / (kh * kw)


def local_mean(x: torch.Tensor, kernel: tuple[int, int], integral: bool = False) -> torch.Tensor:
    """Mean over the ``kernel`` window around each pixel, with a replicated border (TLC Eq. 2).

    Equal to the official integral-image form (``cumsum`` box sum, then a centred replicate pad):
    a stride-1 box mean over the valid positions, padded back to H x W by repeating the border.
    The box mean is computed separably (one pass per axis), O(HW (kh + kw)) instead of O(HW kh kw),
    and in float32 it does not drift as a cumulative sum over a large map does. ``integral=True``
    uses :func:`integral_box_mean` instead (O(HW), float32 runtimes). When the window spans the
    whole map the result is the global mean, shaped (B, C, 1, 1) as a global pool's.
    """
    height, width = x.shape[-2:]
    if covers(kernel, height, width):
        return x.mean(dim=(-2, -1), keepdim=True)
    kh, kw = min(height, kernel[0]), min(width, kernel[1])
    out = x
    if integral:
        out = integral_box_mean(x, kh, kw)
    else:
        if kh > 1:
            out = F.avg_pool2d(out, (kh, 1), stride=1)
        if kw > 1:
            out = F.avg_pool2d(out, (1, kw), stride=1)
    pad_h, pad_w = height - out.shape[-2], width - out.shape[-1]
    if pad_h or pad_w:
        out = F.pad(out, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), mode="replicate")
    return out


def local_variance(x: torch.Tensor, kernel: tuple[int, int], mean: torch.Tensor | None = None) -> torch.Tensor:
    """Biased variance over the ``kernel`` window around each pixel (TLC Eq. 3 made local).

    ``E_local[x^2] - E_local[x]^2`` as the official ``LocalInstanceNorm2d``; where the window spans
    the whole map, the centred global form ``mean((x - mu)^2)`` so that local == global exactly.
    """
    mean = local_mean(x, kernel) if mean is None else mean
    if covers(kernel, *x.shape[-2:]):
        return (x - mean).square().mean(dim=(-2, -1), keepdim=True)
    return (local_mean(x * x, kernel) - mean * mean).clamp_min(0.0)


def windowed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Apply ``fn`` to each overlapping ``kernel`` window of ``x`` and average where windows overlap.

    The windows are laid as the official ``LocalAttention.grids`` (see :func:`window_starts`), cut
    from ``x`` and stacked along the batch axis so ``fn`` runs once on all of them; the outputs are
    put back, summed, and divided by how many windows cover each pixel (``grids_inverse``). ``fn``
    must keep the spatial size; it may change the channel count. One window spanning the map is
    just ``fn(x)``.
    """
    batch = x.shape[0]
    height, width = x.shape[-2:]
    if covers(kernel, height, width):
        return fn(x)
    kh, kw = min(height, kernel[0]), min(width, kernel[1])
    rows, cols = window_starts(height, kh), window_starts(width, kw)
    origins = [(i, j) for i in rows for j in cols]
    parts = torch.cat([x[:, :, i : i + kh, j : j + kw] for i, j in origins], dim=0)
    outs = fn(parts)
    total = None
    for index, (i, j) in enumerate(origins):
        out = outs[index * batch : (index + 1) * batch]
        placed = F.pad(out, (j, width - j - kw, i, height - i - kh))
        total = placed if total is None else total + placed
    # The windows form a grid, so the overlap count at (r, c) is rows covering r x columns covering c.
    row_inverse = [1.0 / sum(i <= r < i + kh for i in rows) for r in range(height)]
    col_inverse = [1.0 / sum(j <= c < j + kw for j in cols) for c in range(width)]
    row_scale = torch.tensor(row_inverse, dtype=total.dtype, device=total.device).reshape(1, 1, height, 1)
    col_scale = torch.tensor(col_inverse, dtype=total.dtype, device=total.device).reshape(1, 1, 1, width)
    return total * row_scale * col_scale


class LocalAvgPool2d(nn.Module):
    """TLC's replacement for ``nn.AdaptiveAvgPool2d(1)``: :func:`local_mean` over a fixed window.

    Args:
        kernel: (kh, kw) window, derived by :func:`~.convert.localize` from the training size.
        integral: Compute the box mean from an integral image (see :func:`local_mean`).
    """

    def __init__(self, kernel: tuple[int, int], integral: bool = False) -> None:
        super().__init__()
        self.kernel = (int(kernel[0]), int(kernel[1]))
        self.integral = integral

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_mean(x, self.kernel, self.integral)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride=1, border=replicate, integral={self.integral}"


def use_integral_means(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose :class:`LocalAvgPool2d` use the integral image (equal output, O(HW)).

    An export rewrite for float32 backends: a stride-1 pool with a 384-pixel window costs O(k) per
    output on runtimes that do not delegate it (ExecuTorch portable kernels), the integral image O(1).
    """
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, LocalAvgPool2d):
            module.integral = True
    return model
