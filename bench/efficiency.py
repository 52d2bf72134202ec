"""Params, MACs and latency of one method/variant/task at one size: a paper-style efficiency row.

MACs come from :func:`edgeir.evaluation.macs.count_macs` (one MAC per multiply-add, attention included);
latency is eager PyTorch next to the exported artifacts on this host (``bench/latency.py``).
Works for any registered method, e.g. Hi-IR-B vs FlexIR (SwinIR-M) at SR x2:

    python bench/efficiency.py hiir --variant paper --task sr2 --size 128
    python bench/efficiency.py flexir --variant paper --task sr2 --size 128
    python bench/efficiency.py hiir --task sr2 --size 128 --targets none   # params and MACs only
    python bench/efficiency.py hiir --also flexir --task sr2 --targets eager --runs 3

``--also`` adds more methods (same variant, task and size); with ``--targets eager`` their eager
forwards are timed interleaved in one process, so the ratio between them holds on a noisy host.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import edgeir
from edgeir.evaluation.macs import count_macs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--task", default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--also", action="append", default=[], metavar="METHOD", help="more methods to compare")
    parser.add_argument("--targets", default="executorch",
                        help="comma-separated targets for latency, 'eager' (interleaved eager only), or 'none'")
    args = parser.parse_args(argv)

    x = torch.rand(1, 3, args.size, args.size)
    models = {}
    for method in [args.method, *args.also]:
        model = edgeir.build_model(method, variant=args.variant, task=args.task).eval()
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, x)
        print(f"{method} {args.variant} {args.task or 'default task'} {args.size}x{args.size}: "
              f"{params / 1e6:.2f}M params, {macs / 1e9:.2f} GMACs ({2 * macs / 1e9:.2f} GFLOPs)", flush=True)
        models[method] = model
    if args.targets == "none":
        return 0
    if args.targets == "eager":
        return _eager_interleaved(models, x, args.runs)
    sys.path.insert(0, str(Path(__file__).parent))
    import latency

    latency_args = [args.method, "--variant", args.variant, "--size", str(args.size), "--runs", str(args.runs),
                    "--warmup", "1", "--targets", args.targets]
    if args.task:
        latency_args += ["--task", args.task]
    return latency.main(latency_args)


def _eager_interleaved(models: dict, x: torch.Tensor, runs: int) -> int:
    samples: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(x)  # warm-up
        for _ in range(runs):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                samples[name].append(time.perf_counter() - start)
    first = statistics.median(samples[next(iter(models))])
    print(f"eager PyTorch, {torch.get_num_threads()} threads, {runs} interleaved runs:")
    for name, values in samples.items():
        p50 = statistics.median(values)
        print(f"  {name:<12} p50 {p50 * 1000:9.1f} ms   {p50 / first:5.2f}x of {next(iter(models))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
