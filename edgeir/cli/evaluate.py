"""``edgeir eval METHOD|BUNDLE --task T``: PSNR/SSIM against ground truth on the evaluation split."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="PSNR/SSIM of a method or a bundle on the held-out evaluation split",
        description="Degrade fixed crops of the held-out images for the task, restore them with the method's eager "
                    "model (every exit of a multi-exit model) or with a bundle's artifact (every program), and "
                    "print PSNR and SSIM against the clean crops beside the degraded input's PSNR.")
    parser.add_argument("subject", metavar="METHOD|BUNDLE", help="method name, or a bundle directory")
    parser.add_argument("--task", default=None, help="task (default: the method's, or the bundle's)")
    parser.add_argument("--variant", default=None, help="model variant of a method (default: the method's)")
    parser.add_argument("--weights", default=None,
                        help="checkpoint for a method, or 'random' (default: edgeir's shipped weights when it has "
                             "some, else random)")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="folder of clean images whose held-out split is used (default: the built-in photos)")
    parser.add_argument("--count", type=int, default=6, help="evaluation crops (default 6)")
    parser.add_argument("--crop", type=int, default=128, help="crop side for a method (default 128); a bundle uses "
                                                              "its program's input size")
    parser.add_argument("--seed", type=int, default=0, help="seed of crops and degradations")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edgeir.evaluation.accuracy import run_eval

    named = run_eval(args.subject, task=args.task, variant=args.variant, weights=args.weights, data=args.data,
                     count=args.count, crop=args.crop, seed=args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(named.to_json(), indent=2) + "\n")
    if args.quiet:
        return 0
    result = named.result
    source = named.weights.get("source", "?")
    print(f"{named.subject} / {named.task}: {named.pairs} crops of {named.crop} px from the held-out split of "
          f"{named.source} (weights: {source})")
    if result.input_psnr_db is not None:
        print(f"  degraded input: {result.input_psnr_db:.2f} dB")
    for name, figures in result.exits.items():
        ssim = f", SSIM {figures['ssim']:.4f}" if "ssim" in figures else ""
        print(f"  {name}: PSNR {figures['psnr_db']:.2f} dB{ssim}")
    if source == "random-init":
        print("  note: random weights; these figures say nothing about the method")
    return 0
