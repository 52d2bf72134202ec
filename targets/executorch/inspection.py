"""What a lowered graph or a serialized .pte holds: delegated nodes and MACs, delegate ids, and the
contents of Core ML delegates."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def delegation_summary(graph_module) -> dict[str, Any]:
    """Delegated vs non-delegated nodes of a lowered graph and the operators left outside.

    ``getitem`` nodes that unpack a delegate's outputs are bookkeeping, not computation, and are
    not counted as left outside.
    """
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    frame = info.get_operator_delegation_dataframe()
    outside = {
        str(row["op_type"]): int(row["occurrences_in_non_delegated_graphs"])
        for _, row in frame.iterrows()
        if row["op_type"] not in ("Total", "getitem") and int(row["occurrences_in_non_delegated_graphs"]) > 0
    }
    delegated, non_delegated = int(info.num_delegated_nodes), sum(outside.values())
    total = delegated + non_delegated
    return {
        "delegated_nodes": delegated,
        "non_delegated_nodes": non_delegated,
        "delegate_subgraphs": int(info.num_delegated_subgraphs),
        "coverage": round(delegated / total, 4) if total else 0.0,
        "non_delegated_ops": dict(sorted(outside.items(), key=lambda kv: -kv[1])),
        "non_delegated_macs": non_delegated_macs(graph_module),
    }


def non_delegated_macs(graph_module) -> int:
    """MACs of the convolutions and matrix products a lowered graph runs outside its delegates.

    With the model's total MACs this gives the share of the arithmetic the delegate runs (the
    element-wise operators left outside cost bandwidth, not MACs).
    """
    import math

    total = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        op = str(node.target).rsplit("aten.", 1)[-1].split(".")[0]
        out = node.meta.get("val")
        if op not in ("convolution", "mm", "bmm", "addmm") or out is None or not hasattr(out, "shape"):
            continue
        if op == "convolution":
            total += math.prod(out.shape) * math.prod(node.args[1].meta["val"].shape[1:])
        else:
            total += math.prod(out.shape) * int(node.args[1 if op == "addmm" else 0].meta["val"].shape[-1])
    return int(total)


def delegate_ids(pte: bytes) -> list[str]:
    """Backend ids of the delegates in a serialized program (``XnnpackBackend``, ``CoreMLBackend``), sorted."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(pte).program
    return sorted({delegate.id for plan in program.execution_plan for delegate in plan.delegates})


#: ExecuTorch backend id of the Core ML delegate, as registered in a runtime that has it.
COREML_BACKEND_ID = "CoreMLBackend"


#: Prefix of a Core ML delegate payload that refers to a shared (multifunction) model in the named data.
COREML_REFERENCE_MAGIC = b"CMJR"


def coreml_delegate_contents(pte: bytes) -> dict[str, dict[str, Any]]:
    """Per method, what its Core ML delegates hold: MIL operation counts and the weight bytes.

    Each Core ML delegate's payload is a flattened directory with an ``.mlpackage``, inline, or
    (several methods: one multifunction package whose functions share weights) in the program's
    named data, referenced by key and function name. It is unpacked and read with coremltools,
    so an int8 artifact shows its ``quantize``/``dequantize`` ops and ``constexpr_affine_dequantize``
    weights without running it. ``weight_bytes`` is the size of the weights of the package(s) a
    method's delegates use (shared between the methods of a multifunction package).
    """
    import json
    import tempfile

    import coremltools as ct
    from executorch.backends.apple.coreml import executorchcoreml
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte_file = deserialize_pte_binary(pte)
    program = pte_file.program
    named = pte_file.named_data
    contents: dict[str, dict[str, Any]] = {}
    for plan in program.execution_plan:
        ops: dict[str, int] = {}
        weight_bytes = 0
        for delegate in plan.delegates:
            if delegate.id != COREML_BACKEND_ID:
                continue
            payload, function = bytes(program.backend_delegate_data[delegate.processed.index].data), None
            if payload.startswith(COREML_REFERENCE_MAGIC):  # a reference into the named data (multifunction)
                reference = json.loads(payload[len(COREML_REFERENCE_MAGIC):])
                function = reference.get("functionName")
                payload = bytes(named.buffers[named.pte_data[reference["key"]].buffer_index])
            with tempfile.TemporaryDirectory() as scratch:
                if not executorchcoreml.unflatten_directory_contents(payload, scratch):
                    raise ValueError(f"method '{plan.name}': a Core ML delegate payload could not be unpacked")
                package = next(Path(scratch).rglob("*.mlpackage"))
                weight_bytes += sum(f.stat().st_size for f in package.rglob("weights/*") if f.is_file())
                spec = ct.utils.load_spec(str(package))
            for name, mil in spec.mlProgram.functions.items():
                if function is not None and name != function:
                    continue
                for block in mil.block_specializations.values():
                    for op in block.operations:
                        ops[op.type] = ops.get(op.type, 0) + 1
        if ops:
            contents[plan.name] = {"op_counts": dict(sorted(ops.items())), "weight_bytes": weight_bytes}
    return contents



def layout_conversions(exported) -> dict[str, Any]:
    """The memory-layout copies XNNPACK would add to ``exported`` (a program before lowering).

    XNNPACK computes convolutions and poolings channels-last and reshapes channels-first;
    element-wise operators follow their inputs, except that one with a constant 4-D or 0-D operand
    (a parameter, a scalar) stays channels-first. ExecuTorch's ``ChannelsLastTaggedReshapePass``
    inserts a full-tensor copy at each change. This runs its pass chain on an edge copy of the
    program and counts the copies, with the operators that consume the channels-first ones (what
    forced them).
    """
    import collections

    import torch
    from executorch.backends.xnnpack._passes import XNNPACKPassManager
    from executorch.backends.xnnpack._passes.xnnpack_pass import XNNPACKPass
    from executorch.exir import to_edge

    program = to_edge(exported).exported_program()
    graph_module = program.graph_module
    for pass_type in XNNPACKPassManager(program).passes:
        result = (pass_type(program) if issubclass(pass_type, XNNPACKPass) else pass_type())(graph_module)
        graph_module = result.graph_module if result is not None else graph_module
    counts = {"to_channels_last": 0, "to_channels_first": 0}
    forced_by: collections.Counter = collections.Counter()
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or "_to_copy" not in str(node.target):
            continue
        if node.kwargs.get("memory_format") == torch.channels_last:
            counts["to_channels_last"] += 1
        else:
            counts["to_channels_first"] += 1
            forced_by.update(getattr(user.target, "__name__", str(user.target)) for user in node.users)
    return {**counts, "channels_first_for": dict(forced_by.most_common())}
