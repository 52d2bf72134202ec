"""Where FlexIR's ExecuTorch time goes inside window attention: an ablation, not a fix.

FlexIR's ExecuTorch fp32 artifact sits near 0.9x the stock export, where the other methods are
0.4-0.7x: its stock graph is already one delegate, and what is left is the window attention,
which both run the same way. Each variant drops one more piece of the attention from the model
(a changed model, so only its time means anything): the shifted-window mask adds, then the
relative-position bias add, then softmax, then both batched products (v goes straight to the
projection). Every variant is exported through edgeir's ExecuTorch target (XNNPACK fp32) and all
are timed interleaved in one process; ratios are against the unchanged model.

    OMP_NUM_THREADS=2 python bench/flexir_attention_ablation.py --size 128 -o bench-out/flexir-ablation
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

#: Variant -> the attention pieces it leaves out, each dropping one more than the last.
VARIANTS = {
    "full": (),
    "no mask": ("mask",),
    "no mask, bias": ("mask", "bias"),
    "no mask, bias, softmax": ("mask", "bias", "softmax"),
    "no attention": ("mask", "bias", "softmax", "products"),
}


def ablated_forward(dropped: tuple[str, ...]):
    """``WindowAttention.forward`` without the pieces named in ``dropped``."""

    def forward(self, x: torch.Tensor, bias: torch.Tensor, mask=None) -> torch.Tensor:
        bw, n, c = x.shape
        h, d = self.heads, c // self.heads
        qkv = self.qkv(x)
        v = qkv[..., 2 * c:].reshape(bw, n, h, d).permute(0, 2, 1, 3).reshape(bw * h, n, d)
        if "products" in dropped:
            return self.proj(v.reshape(bw, h, n, d).permute(0, 2, 1, 3).reshape(bw, n, c))
        q = (qkv[..., :c] * self.scale).reshape(bw, n, h, d).permute(0, 2, 1, 3).reshape(bw * h, n, d)
        k = qkv[..., c:2 * c].reshape(bw, n, h, d).permute(0, 2, 3, 1).reshape(bw * h, d, n)
        logits = torch.bmm(q, k).reshape(bw, h, n, n)
        if "bias" not in dropped:
            logits = logits + bias
        if mask is not None and "mask" not in dropped:
            row, col = mask
            logits = logits.reshape(-1, col.shape[0], h, n, n) + col
            logits = logits.reshape(-1, row.shape[0], col.shape[0] * h, n, n) + row
        attn = logits if "softmax" in dropped else torch.softmax(logits, dim=-1)
        out = torch.bmm(attn.reshape(bw * h, n, n), v)
        return self.proj(out.reshape(bw, h, n, d).permute(0, 2, 1, 3).reshape(bw, n, c))

    return forward


def export_variants(args) -> dict[str, Path]:
    """One ExecuTorch fp32 bundle per variant under ``args.output`` (reused when there)."""
    import edgeir
    from edgeir.bundle import MANIFEST
    from edgeir.plugins.flexir import model

    original = model.WindowAttention.forward
    paths = {}
    try:
        for index, (name, dropped) in enumerate(VARIANTS.items()):
            out = Path(args.output) / f"variant-{index}"
            found = sorted(out.glob(f"*/{MANIFEST}"))
            if not found:
                model.WindowAttention.forward = ablated_forward(dropped) if dropped else original
                print(f"# exporting '{name}'", flush=True)
                edgeir.export("flexir", "executorch", variant=args.variant, input_size=(args.size, args.size),
                              output=str(out))
                found = sorted(out.glob(f"*/{MANIFEST}"))
            paths[name] = next(found[0].parent.glob("*.pte"))
    finally:
        model.WindowAttention.forward = original
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("-o", "--output", default="bench-out/flexir-ablation")
    args = parser.parse_args(argv)

    from executorch.extension.pybindings import _portable_lib
    from executorch.runtime import Runtime

    paths = export_variants(args)
    _portable_lib._unsafe_reset_threadpool(args.threads)
    methods = {name: Runtime.get().load_program(path).load_method("forward") for name, path in paths.items()}
    x = torch.rand(1, 3, args.size, args.size)
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(args.runs + 2):
        for name, method in methods.items():
            start = time.perf_counter()
            method.execute([x])
            if round_ >= 2:
                samples[name].append((time.perf_counter() - start) * 1000)
    full = statistics.median(samples["full"])
    print(f"\nFlexIR {args.variant} {args.size}x{args.size}, ExecuTorch XNNPACK fp32, {args.threads} threads\n")
    print("| variant | ms | vs full |\n|---|---|---|")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):.1f} | {statistics.median(values) / full:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
