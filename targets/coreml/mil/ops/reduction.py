"""Reductions: ``reduce_*`` over ``axes`` (all axes when absent), ``keep_dims`` default False.

Definition followed: ``mil/ops/defs/iOS15/reduction.py`` (``ReductionAxes`` and ``ReductionAxis``);
iOS 17 changes only the accepted dtypes.
"""

from __future__ import annotations

import torch

from edgeir.targets.coreml.mil.ops import kernel


def _axes(a, x: torch.Tensor) -> list[int]:
    axes = a.ints("axes")
    return list(range(x.dim())) if axes is None else [v % x.dim() if x.dim() else 0 for v in axes]


_REDUCE = {
    "reduce_mean": lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
    "reduce_sum": lambda x, d, k: torch.sum(x, dim=d, keepdim=k),
    "reduce_max": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "reduce_prod": lambda x, d, k: _prod(x, d, k),
    "reduce_l1_norm": lambda x, d, k: torch.sum(x.abs(), dim=d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k)),
    "reduce_sum_square": lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k),
    "reduce_log_sum": lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}


def _prod(x: torch.Tensor, dims: list[int], keep: bool) -> torch.Tensor:
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keep)
    return x


def _reduce(name: str):
    fn = _REDUCE[name]

    def run(a):
        x = a.tensor("x")
        return fn(x, _axes(a, x), bool(a.value("keep_dims", False)))

    run.__name__ = name
    run.__doc__ = f"``{name}(x, axes, keep_dims)`` (iOS15/reduction.py, class ``{name}``)."
    return run


for _name in _REDUCE:
    kernel(_name)(_reduce(_name))


@kernel("reduce_argmax", "reduce_argmin")
def reduce_arg(a):
    """Index of the largest (smallest) value along ``axis`` (default -1), ``keep_dims`` default False
    (iOS15/reduction.py, ``reduce_argmax`` / ``reduce_argmin``)."""
    x = a.tensor("x")
    fn = torch.argmax if a.op.op_type == "reduce_argmax" else torch.argmin
    return fn(x, dim=int(a.value("axis", -1)), keepdim=bool(a.value("keep_dims", False)))
