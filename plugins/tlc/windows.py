"""Window geometry of TLC: kernel sizes from the training size, and the static grid of windows.

The official code (megvii-research/TLC, ``local_arch.py`` / ``restormer_arch.py``) derives each
layer's kernel lazily from a dummy forward at the training size: ``kernel = feature_size_at_train
* base_size // train_size`` with ``base_size = int(1.5 * train_size)``. :mod:`.convert` gets the
same feature sizes from a calibration pass on the ``meta`` device (shapes only, no arithmetic).
"""

from __future__ import annotations

import math

from edgeir.recipe import TLCOptions

__all__ = ["kernel_for", "window_starts"]


def kernel_for(options: TLCOptions, feature_size: tuple[int, int]) -> tuple[int, int]:
    """Window of a layer whose input is ``feature_size`` when the model input is ``train_size``."""
    base = options.resolved_base_size
    train = options.train_size
    return feature_size[0] * base[0] // train[0], feature_size[1] * base[1] // train[1]


def window_starts(size: int, kernel: int) -> list[int]:
    """Start offsets of the overlapping windows along one axis, as the official ``grids`` lays them.

    ``n = ceil(size / k)`` windows of ``k = min(size, kernel)`` pixels, ``ceil((size - k) / (n - 1))``
    apart, the last one clamped to end at the border: windows overlap instead of being padded.
    """
    if size < 1 or kernel < 1:
        raise ValueError(f"window_starts needs a positive size and kernel, got {size} and {kernel}")
    k = min(size, kernel)
    count = (size - 1) // k + 1
    step = k if count == 1 else math.ceil((size - k) / (count - 1) - 1e-8)
    starts = []
    i = 0
    while i < size:
        if i + k >= size:
            starts.append(size - k)
            break
        starts.append(i)
        i += step
    return starts
