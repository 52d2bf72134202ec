"""Where XNNPACK int8 pays: a chain of 1x1 convolutions, int8 vs fp32, by width, with and without a float op between.

What bounds ``et int8 / et fp32`` for a whole model: XNNPACK's int8 convolution kernels (VNNI on
x86) are several times faster than fp32 only where a convolution is compute-bound (wide
channels); a narrow one (16 channels at full resolution, the ``mobile`` variants' first level) is
memory-bound, and int8 saves only the bytes. And every float operator between two quantized
layers (a gate, a normalisation) costs a dequantize and a quantize of the whole tensor, each a
memory pass, besides the float op itself. Each case is exported with edgeir's XNNPACK quantizer
(``pt2e-xnnpack``: convolutions and linear layers) and timed interleaved in one process.

    OMP_NUM_THREADS=1 python bench/int8_kernels.py --widths 16 32 64 --size 256 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


class ConvChain(nn.Module):
    """``depth`` 1x1 convolutions of ``width`` channels, optionally ``x * sigmoid(x)`` (float in int8) between."""

    def __init__(self, width: int, depth: int, float_between: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(depth))
        self.float_between = float_between

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
            if self.float_between:
                x = x * torch.sigmoid(x)
        return x


def lower(module: nn.Module, example: torch.Tensor, int8: bool, path: Path):
    """``module`` through edgeir's XNNPACK quantizer (when ``int8``) and the XNNPACK delegate; its loaded method."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeir.quant.pt2e import xnnpack_quantizer

    module = module.eval()
    if int8:
        prepared = prepare_pt2e(torch.export.export(module, (example,)).module(), xnnpack_quantizer(False, ()))
        prepared(example)
        module = convert_pt2e(prepared)
    edge = to_edge_transform_and_lower(torch.export.export(module, (example,)), partitioner=[XnnpackPartitioner()])
    path.write_bytes(edge.to_executorch().buffer)
    return Runtime.get().load_program(path).load_method("forward")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    from executorch.extension.pybindings import _portable_lib

    sys.path.insert(0, str(Path(__file__).parent))
    from performance import isa_flags, sgemm_gflops

    torch.set_num_threads(args.threads)
    methods = {}
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            x = torch.rand(1, width, args.size, args.size)
            for between in (False, True):
                for int8 in (False, True):
                    key = (width, between, int8)
                    methods[key] = (lower(ConvChain(width, args.depth, between), x, int8,
                                          Path(tmp) / f"{width}-{between}-{int8}.pte"), x)
        _portable_lib._unsafe_reset_threadpool(args.threads)
        samples: dict = {key: [] for key in methods}
        for round_ in range(args.runs + 2):
            for key, (method, x) in methods.items():
                start = time.perf_counter()
                method.execute([x])
                if round_ >= 2:
                    samples[key].append((time.perf_counter() - start) * 1000)
    flags = ", ".join(flag for flag, on in isa_flags().items() if on)
    print(f"ISA: {flags}; sgemm 2048^2 with {args.threads} threads: {sgemm_gflops():.0f} GFLOP/s; "
          f"{args.depth} 1x1 convolutions at {args.size}x{args.size}, {args.threads} threads, median ms")
    print("\n| width | float op between | fp32 ms | int8 ms | int8 / fp32 |\n|---|---|---|---|---|")
    for width in args.widths:
        for between in (False, True):
            fp32 = statistics.median(samples[(width, between, False)])
            int8 = statistics.median(samples[(width, between, True)])
            print(f"| {width} | {'x * sigmoid(x)' if between else 'none'} | {fp32:.2f} | {int8:.2f} | "
                  f"{int8 / fp32:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
