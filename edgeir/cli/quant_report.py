"""``edgeir quant-report METHOD --target T``: which module groups cost the most PSNR in int8."""

from __future__ import annotations

import argparse
import json

from edgeir.cli.export import program_size


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "quant-report", help="per-layer int8 sensitivity: PSNR cost of quantizing each module group",
        description="Quantize the program (PTQ, fake-quant) with the target's int8 engine, then once more per module "
                    "group with that group kept in float; print the groups sorted by the PSNR they cost.")
    parser.add_argument("method", help="method name (see 'edgeir list')")
    parser.add_argument("--target", default="executorch", help="target whose int8 engine is used (default executorch)")
    parser.add_argument("--variant", default=None, help="model variant")
    parser.add_argument("--task", default=None, help="restoration task")
    parser.add_argument("--weights", default=None, help="checkpoint to load (default: shipped weights, else random)")
    parser.add_argument("--depth", type=int, default=1, help="module depth of the groups (default 1: top level)")
    parser.add_argument("--groups", default=None, metavar="NAME[+NAME],...",
                        help="the groups to try instead of --depth's: module names, comma-separated; '+' keeps "
                             "several in float together; a bare name (e.g. conv) names every submodule called so")
    parser.add_argument("--size", type=program_size, default=None, metavar="HxW",
                        help="program size (default: the method's; quicker smaller, e.g. 128)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.quantization.sensitivity import sensitivity

    report = sensitivity(args.method, args.target, variant=args.variant, task=args.task, weights=args.weights,
                         depth=args.depth, input_size=args.size,
                         groups=args.groups.split(",") if args.groups else None)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    print(f"{report.method} {report.program} on {report.target} ({report.engine}): all int8 "
          f"{report.all_quantized_psnr_db:.2f} dB vs float")
    print(f"  {'group kept in float':<40} {'PSNR dB':>8} {'cost dB':>8}")
    for layer in report.layers:
        print(f"  {layer.group:<40} {layer.psnr_db:>8.2f} {layer.gain_db:>8.3f}")
    return 0
