"""Reading official Restormer checkpoints (github.com/swz30/Restormer releases).

The released ``.pth`` files are BasicSR saves, ``{"params": state_dict}``, with the official
module names and no ``module.`` prefix; re-saved copies may be bare or carry ``params_ema`` or a
DataParallel ``module.`` prefix. Everything becomes the plain keys of :class:`~.model.Restormer`
(which has exactly the official names); strict loading and naming wrong keys is edgeir's job.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["basicsr_state_dict"]

_WRAPPER_KEYS = ("params_ema", "params", "state_dict")


def basicsr_state_dict(raw: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Plain state-dict keys from a BasicSR-style checkpoint or a bare state dict.

    Raises:
        ValueError: if no tensors are found or an entry is not a tensor.
    """
    state = raw
    for key in _WRAPPER_KEYS:
        if isinstance(raw.get(key), Mapping):
            state = raw[key]
            break
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    if not state:
        raise ValueError("no network weights found in the checkpoint (empty state dict)")
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ValueError(f"entries that should be tensors are not: {not_tensors[:5]}; is this a state dict?")
    return state
