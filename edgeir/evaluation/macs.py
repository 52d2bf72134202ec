"""Multiply-accumulate counts of a module on a given input, for cost tables and efficiency reports.

MACs are counted the way restoration papers report them: one MAC per multiply-add of convolutions,
linear layers and matrix products (attention included), nothing for element-wise ops. The count
comes from ``torch.utils.flop_counter`` (FLOPs / 2), so it follows what actually executes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass of ``module`` on ``inputs`` (no grad, module mode unchanged)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def macs_at_size(module: nn.Module, shape: Sequence[int]) -> int:
    """MACs of ``module`` on a zero input of ``shape`` (N, C, H, W)."""
    import torch

    return count_macs(module, torch.zeros(tuple(shape)))
