"""``edgeir finetune METHOD --task T``: fine-tune a method on clean photos degraded for the task."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a method on a folder of clean images (or the built-in photos)",
        description="Train the method's model with its objective on random crops of clean images degraded on the "
                    "fly for the task (AdamW, warm-up + cosine schedule), evaluate PSNR/SSIM on a held-out split "
                    "and write a .safetensors file that 'edgeir export --weights' loads. Under torchrun the "
                    "processes train data-parallel.")
    parser.add_argument("method", help="method name (see 'edgeir list')")
    parser.add_argument("--task", default=None, help="task to train for, e.g. denoise25 (default: the method's)")
    parser.add_argument("--variant", default=None, help="model variant (default: the method's)")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="folder of clean images, searched recursively (default: the built-in photos)")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps (default 1000)")
    parser.add_argument("--weights", default=None,
                        help="starting checkpoint, or 'random' (default: edgeir's shipped weights for this "
                             "method/variant/task when it has some, else random)")
    parser.add_argument("-o", "--output", default=None,
                        help="weights file to write (.safetensors) or a folder for it "
                             "(default: finetuned/<method>-<variant>-<task>.safetensors)")
    parser.add_argument("--crop", type=int, default=64, help="side of the training crops (default 64)")
    parser.add_argument("--batch", type=int, default=4, help="crops per step (default 4)")
    parser.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (default 2e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, crops and degradations")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default: end)")
    parser.add_argument("--eval-count", type=int, default=6, help="evaluation crops (default 6)")
    parser.add_argument("--eval-crop", type=int, default=128, help="side of the evaluation crops (default 128)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="steps between training-state saves (default: end)")
    parser.add_argument("--resume", action="store_true", help="continue from the training state beside --output")
    parser.add_argument("--device", default=None, help="torch device (default: CUDA when present, else CPU)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import os
    import sys

    from edgeir.finetune import finetune

    result = finetune(args.method, task=args.task, variant=args.variant, data=args.data, steps=args.steps,
                      weights=args.weights, output=args.output, crop=args.crop, batch=args.batch, lr=args.lr,
                      seed=args.seed, eval_every=args.eval_every, eval_count=args.eval_count,
                      eval_crop=args.eval_crop, resume=args.resume,
                      checkpoint_every=args.checkpoint_every, device=args.device,
                      command="edgeir " + " ".join(sys.argv[1:]))
    if args.quiet or int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 speaks
        return 0
    report, prov = result.report, result.provenance
    print(f"wrote {result.weights}")
    print(f"  {prov['method']} {prov['variant']} / {prov['task']}: steps {report.start_step}->{report.steps} on "
          f"{report.device} ({report.world_size} process(es)), {report.seconds:.0f} s, "
          f"{report.images_per_second:.1f} crops/s, final loss {report.final_loss:.4f}")
    evaluation = prov["eval"]
    if evaluation["psnr_db"] is not None:
        base = f" (degraded input {evaluation['input_psnr_db']:.2f} dB)" if evaluation["input_psnr_db"] else ""
        print(f"  eval split ({', '.join(prov['eval_images'])}; {evaluation['crops']} crops of "
              f"{evaluation['crop']} px): {evaluation['psnr_db']:.2f} dB, SSIM {evaluation['ssim']:.4f}{base}")
    for name in prov["skipped_files"]:
        print(f"  WARNING: skipped unreadable {name}")
    return 0
