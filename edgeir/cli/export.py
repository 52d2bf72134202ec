"""``edgeir export METHOD --target T``: build, rewrite, export, run and check one bundle."""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; use H or HxW, e.g. 256 or 256x384") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; use H or HxW, e.g. 256 or 256x384")
    return parts[0], parts[1]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a method to an artifact bundle",
        description="Build the method's model, apply its export rewrites, export to the target, run the artifact "
                    "once against the eager model, and write a bundle directory "
                    "<method>-<variant>-<task>-<target>-<quant> under --output.")
    parser.add_argument("method", help="method name (see 'edgeir list')")
    parser.add_argument("--target", required=True, help="onnx, executorch or coreml (see 'edgeir list')")
    parser.add_argument("--variant", default=None, help="model variant (default: the method's, usually 'paper')")
    parser.add_argument("--task", default=None, help="restoration task (default: the method's)")
    parser.add_argument("--weights", default=None,
                        help="checkpoint to load (.pth/.ckpt/.safetensors), or 'random' for the seeded random "
                             "initialisation; without it edgeir's shipped weights for this method/variant/task are "
                             "used when it has some (see 'edgeir finetune'), else a random initialisation, and the "
                             "bundle says which")
    parser.add_argument("-o", "--output", default="artifacts", help="directory for bundles (default: artifacts)")
    parser.add_argument("--quant", "--precision", dest="quant", default=None,
                        help="precision / quantization scheme, e.g. fp32 or fp16 (default: the target's; "
                             "Core ML: fp16)")
    parser.add_argument("--backend", default=None, help="target backend, e.g. xnnpack or portable for executorch")
    parser.add_argument("--size", type=_size, default=None, metavar="HxW",
                        help="input size of the exported program (default: the method's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation without --weights")
    parser.add_argument("--exits", default=None, metavar="all|1,3,6",
                        help="early exits to export, for methods that have them (flexir): 'all' or a comma list; "
                             "adds one program per exit plus the staged programs adaptive inference runs")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.pipeline import export

    bundle = export(args.method, args.target, variant=args.variant, task=args.task, weights=args.weights,
                    output=args.output, quant=args.quant, backend=args.backend, input_size=args.size,
                    seed=args.seed, exits=args.exits)
    manifest = bundle.manifest
    if not args.quiet:
        print(f"wrote {bundle.path}")
        print(f"  {manifest['method']} {manifest['variant']} / {manifest['task']} -> {manifest['target']} "
              f"({manifest['backend']}, {manifest['quant']}), {manifest['params'] / 1e6:.3f}M params")
        for name, stats in manifest["target_details"].get("delegation", {}).items():
            print(f"  {name}: {stats['delegated_nodes']} nodes delegated in {stats['delegate_subgraphs']} "
                  f"subgraph(s), {stats['non_delegated_nodes']} outside ({stats['coverage']:.1%} coverage)")
        check = manifest["export_check"]
        if check["status"] == "passed":
            worst = min(p["psnr_db"] for p in check["programs"].values())
            print(f"  artifact runs in {check['runtime']}: {worst:.1f} dB vs eager on its example input")
        else:
            print(f"  artifact not run: {check['reason']}")
        if manifest["weights"]["source"] == "edgeir-default":
            evaluation = manifest["weights"].get("provenance", {}).get("eval", {})
            print(f"  weights: edgeir's shipped {manifest['variant']} weights for {manifest['task']} "
                  f"(eval PSNR {evaluation.get('psnr_db', '?')} dB vs {evaluation.get('input_psnr_db', '?')} dB input)")
        if manifest["weights"]["source"] == "random-init":
            print("  WARNING: random weights (no --weights): the artifact does not restore images")
    return 0
