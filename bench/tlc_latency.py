"""Extra latency of TLC (the local form) over the global model, per runtime that runs on this host.

For each size, exports the global method and its ``--tlc`` form to ONNX and ExecuTorch (XNNPACK),
then times all artifacts interleaved round by round in one process, so the ratios are comparable on
a noisy shared machine. Also prints the ExecuTorch delegation summary of each artifact (which ops
stay outside the XNNPACK delegate). Core ML cannot run on Linux and is not timed.

    python bench/tlc_latency.py nafnet --variant mobile --sizes 512,1024 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

import edgeir
from edgeir.discovery import targets
from edgeir.recipe import TLCOptions
from edgeir.target import require


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default=None)
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--targets", default="onnx,executorch")
    parser.add_argument("--train-size", type=int, default=256)
    args = parser.parse_args(argv)

    tlc = TLCOptions(train_size=(args.train_size, args.train_size))
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as out:
            runners = {}
            for target in args.targets.split(","):
                for label, option in (("global", None), ("tlc", tlc)):
                    start = time.perf_counter()
                    bundle = edgeir.export(args.method, target, variant=args.variant, task=args.task, output=out,
                                           input_size=(size, size), tlc=option)
                    seconds = time.perf_counter() - start
                    runner = require(targets().get(target).runtime(bundle))
                    runners[target, label] = (runner, bundle.program()["name"])
                    record = bundle.manifest["recipe"].get("tlc")
                    windows = sorted({tuple(k) for k in record["layers"].values()}, reverse=True) if record else "-"
                    print(f"# {size} {target} {label}: exported in {seconds:.0f} s; windows {windows}")
                    for name, stats in bundle.manifest["target_details"].get("delegation", {}).items():
                        print(f"#   {name}: {stats['delegated_nodes']} delegated nodes in "
                              f"{stats['delegate_subgraphs']} subgraph(s), {stats['non_delegated_nodes']} outside "
                              f"{stats.get('non_delegated_ops')}")
            x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
            for _ in range(args.warmup):
                for runner, program in runners.values():
                    runner.run(program, [x])
            samples = {key: [] for key in runners}
            for _ in range(args.runs):
                for key, (runner, program) in runners.items():
                    start = time.perf_counter()
                    runner.run(program, [x])
                    samples[key].append((time.perf_counter() - start) * 1000)
        print(f"{args.method} {args.variant} {size}x{size}, {args.runs} runs, torch threads {torch.get_num_threads()}, "
              f"TLC train size {args.train_size}")
        print(f"{'runtime':<14}{'global p50 ms':>15}{'TLC p50 ms':>13}{'TLC / global':>14}")
        for target in args.targets.split(","):
            g = statistics.median(samples[target, "global"])
            t = statistics.median(samples[target, "tlc"])
            print(f"{target:<14}{g:>15.1f}{t:>13.1f}{t / g:>13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
