"""Params, MACs and latency of one method/variant/task at one size: a paper-style efficiency row.

MACs come from :func:`edgeir.macs.count_macs` (one MAC per multiply-add, attention included);
latency is eager PyTorch next to the exported artifacts on this host (``bench/latency.py``).
Works for any registered method, e.g. Hi-IR-B vs FlexIR (SwinIR-M) at SR x2:

    python bench/efficiency.py hiir --variant paper --task sr2 --size 128
    python bench/efficiency.py flexir --variant paper --task sr2 --size 128
    python bench/efficiency.py hiir --task sr2 --size 128 --targets none   # params and MACs only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import edgeir
from edgeir.macs import count_macs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--task", default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--targets", default="executorch", help="comma-separated targets for latency, or 'none'")
    args = parser.parse_args(argv)

    model = edgeir.build_model(args.method, variant=args.variant, task=args.task).eval()
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, torch.zeros(1, 3, args.size, args.size))
    print(f"{args.method} {args.variant} {args.task or 'default task'} {args.size}x{args.size}: "
          f"{params / 1e6:.2f}M params, {macs / 1e9:.2f} GMACs ({2 * macs / 1e9:.2f} GFLOPs)")
    if args.targets == "none":
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    import latency

    latency_args = [args.method, "--variant", args.variant, "--size", str(args.size), "--runs", str(args.runs),
                    "--warmup", "1", "--targets", args.targets]
    if args.task:
        latency_args += ["--task", args.task]
    return latency.main(latency_args)


if __name__ == "__main__":
    sys.exit(main())
