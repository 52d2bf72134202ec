"""Turning what ``torch.load`` returns into a plain state dict: the steps every plugin's converter shares.

Checkpoint files wrap the network's state dict in different ways: BasicSR saves ``{"params": sd}``
and often ``{"params_ema": sd}`` next to it, PyTorch Lightning ``{"state_dict": sd, ...}`` with the
optimiser and schedulers, other code ``{"model": sd}``; re-saves are often bare. Keys may carry a
DataParallel ``module.`` prefix, or the attribute name of the network inside a training wrapper.

One precedence for the wrapper, :data:`WRAPPER_KEYS`: ``params_ema`` first (the EMA weights are
the ones the official tests evaluate), then ``params``, ``state_dict``, ``model``. The first key
whose value is a mapping wins; a file without any of them is taken as a bare state dict. The order
matters only for a file that holds two of them; every official release holds one (Lightning's
``.ckpt`` only ``state_dict``), or BasicSR's ``params`` with ``params_ema``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["WRAPPER_KEYS", "basicsr_state_dict", "require_tensors", "strip_prefixes", "unwrap"]

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


def unwrap(raw: Mapping[str, object], wrappers: Sequence[str] = WRAPPER_KEYS) -> tuple[str | None, dict[str, object]]:
    """``(wrapper key, a copy of the state dict inside it)``; the key is None for a bare state dict.

    ``wrappers`` are tried in order (default :data:`WRAPPER_KEYS`, the documented precedence).
    """
    for key in wrappers:
        inner = raw.get(key)
        if isinstance(inner, Mapping):
            return key, dict(inner)
    return None, dict(raw)


def strip_prefixes(state: Mapping[str, object], prefixes: Sequence[str] = ("module.",)) -> dict[str, object]:
    """``state`` without the prefixes that every key carries, repeatedly (``module.net.x`` -> ``x``)."""
    state = dict(state)
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in prefixes:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def require_tensors(state: Mapping[str, object], model: str) -> dict[str, torch.Tensor]:
    """``state`` itself once it is known to be a non-empty mapping of tensors.

    Raises:
        ValueError: if it is empty, or naming the first entries that are not tensors (``model``
            says which state dict was expected).
    """
    if not state:
        raise ValueError("no network weights found in the checkpoint (empty state dict)")
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        more = " ..." if len(not_tensors) > 5 else ""
        raise ValueError(f"checkpoint entries that should be tensors are not: {not_tensors[:5]}{more}; "
                         f"is this a state dict of {model}?")
    return dict(state)  # type: ignore[arg-type]


def basicsr_state_dict(raw: Mapping[str, object], model: str = "this model") -> dict[str, torch.Tensor]:
    """Plain state-dict keys from a BasicSR-style checkpoint or a bare state dict.

    Unwraps (:func:`unwrap`), strips a DataParallel ``module.`` prefix and checks the entries; for
    networks whose modules carry the official names, so nothing is renamed.

    Raises:
        ValueError: if no tensors are found or an entry is not a tensor.
    """
    return require_tensors(strip_prefixes(unwrap(raw)[1]), model)
