"""Eager PyTorch vs ONNX Runtime vs ExecuTorch latency for one method, variant and size.

All three run in one process, interleaved round by round, so the ratios are comparable even on a
noisy shared machine; absolute times are for this host only.

    python bench/latency.py anyir --variant paper --size 256 --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

import edgeir
from edgeir.discovery import targets
from edgeir.runtime.reference import ReferenceRunner
from edgeir.target import require


def _artifact_call(runner, program: dict):
    """The artifact's program on inputs of its declared shapes: every input (a multi-input program such as
    DiffIR's ``forward`` takes the image and its degradation input), the image first."""
    rng = np.random.default_rng(1)
    extra = [(rng.random(spec["shape"], dtype=np.float32) * (spec.get("value_range") or (0, 1))[1]).astype(np.float32)
             for spec in program["inputs"][1:]]
    return lambda x: runner.run(program["name"], [x, *extra])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--task", default=None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--targets", default="onnx,executorch")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(torch.get_num_threads())
    contenders = {}
    with tempfile.TemporaryDirectory() as out:
        first = None
        for target in args.targets.split(","):
            bundle = edgeir.export(args.method, target, variant=args.variant, task=args.task, weights=args.weights,
                                   output=out, input_size=(args.size, args.size))
            first = first or bundle
            runner = require(targets().get(target).runtime(bundle))
            label = f"{target} ({bundle.manifest['backend']})"
            contenders[label] = _artifact_call(runner, bundle.program())
            delegation = bundle.manifest["target_details"].get("delegation")
            if delegation:
                for name, stats in delegation.items():
                    print(f"# {label} {name}: {stats['delegated_nodes']} delegated nodes in "
                          f"{stats['delegate_subgraphs']} subgraph(s), {stats['non_delegated_nodes']} outside "
                          f"{stats['non_delegated_ops']}")
        model = edgeir.build_model(args.method, variant=args.variant, task=args.task, weights=args.weights)
        from edgeir.discovery import methods
        from edgeir.recipe import RecipeOptions

        spec = methods().get(args.method)
        program = spec.recipe(model, RecipeOptions(variant=args.variant, task=args.task or spec.default_task,
                                                   input_size=(args.size, args.size))).programs[0]
        # eager runs the same program as the artifacts (its module, all of its inputs)
        reference = ReferenceRunner(program.module, torch.device("cpu"))
        extra = [x.numpy() for x in program.example_inputs()[1:]]
        contenders = {"eager (torch)": lambda x: reference.run([x, *extra]), **contenders}

        x = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
        for _ in range(args.warmup):
            for run in contenders.values():
                run(x)
        samples = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, run in contenders.items():
                start = time.perf_counter()
                run(x)
                samples[name].append((time.perf_counter() - start) * 1000)

    eager = statistics.median(samples["eager (torch)"])
    print(f"{args.method} {args.variant} {args.size}x{args.size}, {args.runs} runs, torch threads "
          f"{torch.get_num_threads()}, {first.manifest['params'] / 1e6:.3f}M params")
    print(f"{'runtime':<26}{'p50 ms':>10}{'min ms':>10}{'vs eager':>10}")
    for name, values in samples.items():
        p50 = statistics.median(values)
        print(f"{name:<26}{p50:>10.1f}{min(values):>10.1f}{eager / p50:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
