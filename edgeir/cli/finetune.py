"""``edgeir finetune METHOD --task T``: fine-tune a method on clean photos degraded for the task."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a method on a folder of clean images (or the built-in photos)",
        description="Train the method's model with its objective on random crops of clean images degraded on the "
                    "fly for the task (AdamW, warm-up + cosine schedule), evaluate PSNR/SSIM on a held-out split "
                    "and write a .safetensors file that 'edgeir export --weights' loads. Under torchrun the "
                    "processes train data-parallel. With --qat SCHEME --target T the training runs on the "
                    "target's fake-quant program instead (quantization-aware) and writes its int8 bundle.")
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
                             "(default: finetuned/<method>-<variant>-<task>.safetensors); with --qat the "
                             "folder for the bundle (default: artifacts)")
    parser.add_argument("--qat", default=None, metavar="SCHEME",
                        help="quantization-aware fine-tuning for SCHEME (int8) on --target; writes the bundle")
    parser.add_argument("--target", default=None, help="with --qat: the target whose quantizer is simulated")
    parser.add_argument("--backend", default=None, help="with --qat: the target backend (e.g. xnnpack, coreml)")
    parser.add_argument("--crop", type=int, default=None,
                        help="side of the training crops (default 64; with --qat the program size, the method's)")
    parser.add_argument("--batch", type=int, default=4, help="crops per step (default 4)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-4; with --qat 2e-5)")
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

    if args.qat is not None:
        return _quantization_aware(args)
    if args.target or args.backend:
        from edgeir.errors import UsageError

        raise UsageError("--target and --backend belong to quantization-aware fine-tuning: add --qat int8")
    from edgeir.training.finetune import finetune

    result = finetune(args.method, task=args.task, variant=args.variant, data=args.data, steps=args.steps,
                      weights=args.weights, output=args.output, crop=args.crop or 64, batch=args.batch,
                      lr=args.lr or 2e-4,
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


def _quantization_aware(args: argparse.Namespace) -> int:
    from edgeir.errors import UsageError
    from edgeir.training.finetune import quantization_aware_finetune

    if not args.target:
        raise UsageError("--qat needs --target: the quantizer it trains against is the target's "
                         "(executorch: PT2E XNNPACK or Core ML, onnx: NNCF, coreml: PT2E Core ML)")
    unused = [flag for flag, value in (("--batch", args.batch != 4), ("--resume", args.resume),
                                       ("--eval-every", args.eval_every), ("--checkpoint-every", args.checkpoint_every),
                                       ("--device", args.device)) if value]
    if unused:
        raise UsageError(f"{', '.join(unused)} do not apply to --qat (it trains the fake-quant program on the CPU "
                         "with batches of 4)")
    bundle = quantization_aware_finetune(args.method, scheme=args.qat, target=args.target, task=args.task,
                                         variant=args.variant, data=args.data, steps=args.steps,
                                         weights=args.weights, output=args.output or "artifacts", crop=args.crop,
                                         lr=args.lr, backend=args.backend, seed=args.seed)
    if args.quiet:
        return 0
    quantization = bundle.manifest["quantization"]
    print(f"wrote {bundle.path}")
    check = bundle.manifest["export_check"]
    for name, details in quantization["programs"].items():
        qat = details.get("qat", {})
        agreement = check.get("programs", {}).get(name, {}).get("artifact_vs_fakequant_psnr_db")
        compared = f"{agreement:.1f} dB" if agreement is not None else f"not run: {check.get('reason', '')}"
        print(f"  {name}: {quantization['engine']} QAT {qat.get('steps', 0)} steps, final loss "
              f"{qat.get('final_loss', float('nan')):.4f}; artifact vs fake-quant {compared}")
    return 0
