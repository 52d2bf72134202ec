"""NAFNet-Local: NAFNet whose simplified channel attention pools over local windows (TLC).

As the official ``NAFNetLocal``: every ``AdaptiveAvgPool2d(1)`` becomes a stride-1 mean over a
window of 1.5x the feature size at the training crop (256 by default), with a replicated border.
"""

from __future__ import annotations

from torch import nn

from edgeir.plugins.tlc.convert import localize
from edgeir.plugins.tlc.ops import LocalAvgPool2d
from edgeir.recipe import TLCOptions

__all__ = ["RULES", "to_local"]


def _local_pool(module: nn.Module, kernel: tuple[int, int]) -> nn.Module:
    if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size not in (1, (1, 1)):
        raise ValueError(f"TLC converts global pooling only, not AdaptiveAvgPool2d({module.output_size})")
    return LocalAvgPool2d(kernel)


RULES = {nn.AdaptiveAvgPool2d: _local_pool, LocalAvgPool2d: _local_pool}


def to_local(model: nn.Module, options: TLCOptions | None = None, in_channels: int = 3):
    """NAFNet-Local of ``model`` and the manifest record (see :func:`~edgeir.plugins.tlc.convert.localize`)."""
    return localize(model, options or TLCOptions(), RULES, in_channels)
