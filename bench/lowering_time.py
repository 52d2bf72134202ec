"""Where ExecuTorch XNNPACK lowering time goes, with and without some of edgeir's delegate passes.

For one method's photo program: ``torch.export``, edgeir's delegate passes, then
``to_edge_transform_and_lower`` split into its two halves (``to_edge`` with the decompositions;
partitioning plus XNNPACK's own pass chain and serialisation, ``to_backend``) and
``to_executorch``. Lowering costs roughly a constant per graph node (each of XNNPACK's sixteen
passes re-traces the whole graph), so what edgeir controls is how many nodes its passes leave.
``--without`` drops passes by name to measure what one of them changes, alternating runs in
one process so that both see the same host load.

    OMP_NUM_THREADS=1 python bench/lowering_time.py nafnet --variant mobile --size 128 \\
        --without fold_into_convolutions
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def lower_once(method: str, variant: str, size: int, without: tuple[str, ...]) -> dict:
    """Seconds per stage and the node count of one lowering of ``method``'s first program."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge

    from edgeir.discovery import methods
    from edgeir.recipe import RecipeOptions
    from edgeir.targets.executorch import xnnpack_passes
    from edgeir.weights.build import build_model_with_weights

    spec = methods().get(method)
    model, _ = build_model_with_weights(method, variant, None, "random")
    program = spec.recipe(model, RecipeOptions(variant=variant, task=spec.default_task,
                                               input_size=(size, size))).programs[0]
    example = program.example_inputs()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    exported = torch.export.export(program.module.eval(), example, strict=False)
    seconds["torch_export"] = time.perf_counter() - start
    kept = xnnpack_passes.PASSES
    xnnpack_passes.PASSES = tuple((name, fn) for name, fn in kept if name not in without)
    try:
        start = time.perf_counter()
        exported, _ = xnnpack_passes.apply_delegate_passes(exported, example)
        seconds["delegate_passes"] = time.perf_counter() - start
    finally:
        xnnpack_passes.PASSES = kept
    nodes = sum(1 for node in exported.graph.nodes if node.op == "call_function")
    start = time.perf_counter()
    edge = to_edge(exported)
    seconds["to_edge"] = time.perf_counter() - start
    start = time.perf_counter()
    edge = edge.to_backend(XnnpackPartitioner())
    seconds["to_backend"] = time.perf_counter() - start
    start = time.perf_counter()
    edge.to_executorch()
    seconds["to_executorch"] = time.perf_counter() - start
    return {"nodes": nodes, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--without", nargs="*", default=[], help="delegate passes to drop, by name")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    configurations = {"all passes": ()}
    if args.without:
        configurations[f"without {', '.join(args.without)}"] = tuple(args.without)
    results: dict[str, list[dict]] = {label: [] for label in configurations}
    for _ in range(args.repeats):
        for label, without in configurations.items():
            results[label].append(lower_once(args.method, args.variant, args.size, without))
    stages = list(results["all passes"][0]["seconds"])
    print(f"{args.method} {args.variant} {args.size}x{args.size}, best of {args.repeats} (seconds)\n")
    print("| passes | call nodes | " + " | ".join(stages) + " | total |\n|---|---|" + "---|" * (len(stages) + 1))
    for label, runs in results.items():
        best = {stage: min(run["seconds"][stage] for run in runs) for stage in stages}
        print(f"| {label} | {runs[0]['nodes']} | " + " | ".join(f"{best[s]:.1f}" for s in stages)
              + f" | {sum(best.values()):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
