"""Where a Core ML program departs from its eager model: the first MIL op whose output disagrees.

coremltools names each MIL op after the torch.export node it converts (``conv2d_5``; an fp16
program adds ``_cast_fp16``). So the eager model is exported the way the target converts it
(``torch.export`` then ``run_decompositions({})``), run node by node with every intermediate kept,
and each MIL op whose name gives a node of the same kind and shape is compared with it. The
first op, in program order, whose signal-to-error ratio ``10 log10(sum(ref^2) / sum((out - ref)^2))``
is below the scheme's threshold is named, with the torch node. Ops coremltools made up (no node of
that name, or a fused pattern named after a node of another kind) cannot be compared; those that
feed the departing op since the last agreeing one are listed as ``unmatched_inputs``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

# MIL op type -> the aten roots (node name without the _N counter) it is converted from.
_KINDS = {
    "conv": {"conv2d", "conv1d", "conv3d", "convolution", "_convolution"},
    "conv_transpose": {"conv_transpose2d", "conv_transpose1d", "convolution", "_convolution"},
    "real_div": {"div"}, "floor_div": {"floor_divide", "div"},
    "reshape": {"view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze"},
    "transpose": {"permute", "transpose", "t", "numpy_t"},
    "matmul": {"matmul", "bmm", "mm", "baddbmm"}, "linear": {"linear", "addmm"},
    "reduce_mean": {"mean"}, "reduce_sum": {"sum"}, "reduce_max": {"amax", "max"}, "reduce_min": {"amin", "min"},
    "reduce_l2_norm": {"linalg_vector_norm", "norm"}, "maximum": {"maximum", "clamp_min", "max"},
    "minimum": {"minimum", "clamp_max", "min"}, "clip": {"clamp", "hardtanh", "clip"},
    "tile": {"expand", "repeat"}, "slice_by_index": {"slice", "select", "narrow"},
    "slice_by_size": {"slice", "narrow"}, "concat": {"cat", "concat"}, "expand_dims": {"unsqueeze"},
    "gather": {"index_select", "embedding", "index", "select"}, "pad": {"pad", "constant_pad_nd",
                                                                       "reflection_pad2d", "replication_pad2d"},
    "upsample_nearest_neighbor": {"upsample_nearest2d"}, "upsample_bilinear": {"upsample_bilinear2d"},
    "resize_bilinear": {"upsample_bilinear2d"}, "cast": {"to", "_to_copy", "type_as"},
    "layer_norm": {"layer_norm", "native_layer_norm"},
    "batch_norm": {"batch_norm", "_native_batch_norm_legit_no_training"}, "sub": {"sub", "rsub"},
    "softmax": {"softmax", "_softmax"}, "gelu": {"gelu"}, "silu": {"silu"}, "relu": {"relu"},
}
_SUFFIX = re.compile(r"(_cast_fp16|_cast_fp32|_to_fp16|_to_fp32)$")
_COUNTER = re.compile(r"_\d+$")


def snr_db(got: torch.Tensor, ref: torch.Tensor) -> float:
    """``10 log10(sum(ref^2) / sum((got - ref)^2))``; inf when equal."""
    got, ref = got.double().reshape(-1), ref.double().reshape(-1)
    err = float(((got - ref) ** 2).sum())
    power = float((ref ** 2).sum())
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(max(power, 1e-30) / err)


def eager_intermediates(module: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every call node's output of ``module`` exported as the Core ML target converts it, by node name."""
    exported = torch.export.export(module.eval(), tuple(inputs), strict=False).run_decompositions({})
    graph_module = exported.module()
    kept: dict[str, torch.Tensor] = {}

    class Keeper(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            if node.op == "call_function" and isinstance(out, torch.Tensor):
                kept[node.name] = out.detach()
            return out

    with torch.no_grad():
        Keeper(graph_module).run(*inputs)
    return kept


def _kind_matches(op_type: str, node_name: str) -> bool:
    root = _COUNTER.sub("", node_name)
    return root == op_type or root in _KINDS.get(op_type, ())


def _node_for(op, var, eager: dict[str, torch.Tensor]) -> str | None:
    for name in (var.name, op.name):
        base = _SUFFIX.sub("", name)
        if base in eager and _kind_matches(op.op_type, base):
            return base
    return None


def locate(package: str | Path, program: str, programs: list[dict[str, Any]], module: torch.nn.Module,
           inputs: Sequence[np.ndarray], threshold_db: float) -> dict[str, Any]:
    """The first op of ``program`` whose output is below ``threshold_db`` (SNR) against the eager intermediate.

    Returns a dict with ``op`` (MIL op name), ``op_type``, ``torch_node``, ``snr_db``, ``threshold_db``,
    ``unmatched_inputs`` and a one-line ``summary``; ``op`` is None when every comparable op agrees
    (then the departure is in ops that cannot be compared, listed in ``summary``), with ``compared``.
    """
    from edgeir.targets.coreml.runtime import MILRunner

    runner = MILRunner(Path(package), programs)
    function = runner.function(program)
    tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs]
    eager = eager_intermediates(module, tensors)
    verdict: dict[str, bool] = {}  # MIL var name -> agrees with its eager node
    producer: dict[str, Any] = {}
    order = {op.name: i for i, op in enumerate(runner.program.operations(function))}
    found: dict[str, Any] = {}
    compared = 0

    def observe(op, outputs) -> None:
        nonlocal compared
        for var, out in zip(op.outputs, outputs, strict=True):
            producer[var.name] = op
            if found or not isinstance(out, torch.Tensor):
                continue
            node = _node_for(op, var, eager)
            if node is None or tuple(eager[node].shape) != tuple(out.shape) or not out.is_floating_point():
                continue
            compared += 1
            ratio = snr_db(out, eager[node].to(out.device))
            verdict[var.name] = ratio >= threshold_db
            if ratio < threshold_db:
                found.update(op=op.name, op_type=op.op_type, output=var.name, torch_node=node,
                             snr_db=round(ratio, 2), threshold_db=threshold_db,
                             unmatched_inputs=sorted(_unmatched_inputs(op, verdict, producer),
                                                     key=lambda name: order.get(name, 0)))

    runner.program.run(function, runner.feeds(program, inputs), observe=observe)
    if not found:
        return {"op": None, "compared": compared, "threshold_db": threshold_db,
                "summary": f"all {compared} ops comparable with an eager node agree (>= {threshold_db:.0f} dB); "
                           "the departure is in ops coremltools created that have no torch counterpart"}
    found["compared"] = compared
    extra = (f"; it is fed through {len(found['unmatched_inputs'])} op(s) without a torch counterpart, from "
             f"`{found['unmatched_inputs'][0]}` on (first in program order): "
             + ", ".join(found["unmatched_inputs"][:6]) if found["unmatched_inputs"] else "")
    found["summary"] = (f"{found['op_type']} `{found['op']}` (torch node {found['torch_node']}): "
                        f"{found['snr_db']:.1f} dB against the eager intermediate (< {threshold_db:.0f} dB){extra}")
    return found


def _unmatched_inputs(op, verdict: dict[str, bool], producer: dict[str, Any], limit: int = 50) -> list[str]:
    """Non-const ops without an eager counterpart between ``op`` and the compared ops that feed it."""
    seen, stack, names = set(), [op], []
    while stack and len(names) < limit:
        current = stack.pop()
        for value in current.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else [value]:
                if var.name in verdict or var.name in seen:
                    continue
                seen.add(var.name)
                source = producer.get(var.name)
                if source is None or source.op_type == "const":
                    continue
                names.append(source.name)
                stack.append(source)
    return names
