"""FlexIR adaptive inference (Alg. 2): the threshold sweep's exits, compute, time and PSNR vs the full model.

1. The paper starts from a trained SwinIR; none can be downloaded here, so stage A stands in for it:
   the full model (pointer N) trained with the plain Charbonnier loss for ``--pretrain-steps``, then
   its head copied into every exit, as ``load_checkpoint`` does with an official SwinIR tail.
   Stage B is ``edgeir.training.finetune("flexir", ...)``: progressive self-distillation (Alg. 1) with the
   stage-A model as the teacher (with ``--train``).
2. On every built-in photo (centre crop of 2R x 2R, degraded for the task; R = the region side),
   adaptive inference over 4 regions at each threshold with the calibrated stopping rule
   (``adaptive.calibrate_model``, what an ``--exits`` export stores in its manifest), and regular
   inference with the full model (pointer N) on the same regions, through the eager stages and,
   with ``--executorch``, the exported ExecuTorch staged program (whose manifest's rule must be the
   same; the bench says whether both take the same exits, exit for exit).

Without ``--weights`` or ``--train`` it uses the weights edgeir ships (``bench/train_default_weights.py``
trains them the same two-stage way).

    OMP_NUM_THREADS=1 .venv/bin/python bench/flexir_adaptive.py --variant mobile --region 64 --threads 1 \
        --executorch --out bench/out
    OMP_NUM_THREADS=1 .venv/bin/python bench/flexir_adaptive.py --variant mobile --train --pretrain-steps 200 \
        --steps 200 --lr 2e-4 --region 64 --out bench/out
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

THRESHOLDS = (0.5, 0.8, 0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 2.0, 3.0)


def sgemm_gflops(threads: int, n: int = 512, repeats: int = 20) -> float:
    """fp32 matrix-multiply GFLOP/s on this host right now (the yardstick beside the timings)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def pretrain_full_model(args: argparse.Namespace, path: Path) -> dict:
    """Stage A: the full model with plain Charbonnier, then its head copied into every exit."""
    import torch

    import edgeir
    from edgeir.data.datasets import TrainingPairs, evaluation_pairs, load_images
    from edgeir.plugins.flexir.training import train_full_model
    from edgeir.training.loop import save_weights

    torch.manual_seed(0)
    model = edgeir.build_model("flexir", variant=args.variant, task=args.task, weights="random")
    images = load_images(None)
    train = TrainingPairs(args.task, source=images, crop=64, batch=4, seed=0)
    pairs = evaluation_pairs(args.task, source=images, crop=64, count=4, seed=0)
    report = train_full_model(model, train, steps=args.pretrain_steps, lr=args.pretrain_lr, eval_pairs=pairs)
    save_weights(model, path)
    final = report.final_eval
    return {"path": path, "steps": args.pretrain_steps, "lr": args.pretrain_lr, "seconds": round(report.seconds, 1),
            "eval_psnr_db": round(final.psnr_db, 3) if final else None,
            "input_psnr_db": round(final.input_psnr_db, 3) if final and final.input_psnr_db else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default="denoise25")
    parser.add_argument("--pretrain-steps", type=int, default=200, help="stage A: full model, Charbonnier")
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=200, help="stage B: progressive self-distillation")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--region", type=int, default=64, help="region side R (the staged programs' size)")
    parser.add_argument("--weights", default=None,
                        help="use these weights (default: the ones edgeir ships for the variant, else --train)")
    parser.add_argument("--train", action="store_true", help="fine-tune first (stages A and B) instead")
    parser.add_argument("--executorch", action="store_true", help="drive the exported staged program too")
    parser.add_argument("--bundle", default=None,
                        help="with --executorch: an existing '--exits all' ExecuTorch bundle of these weights at the "
                             "region size, instead of exporting one")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per image (median)")
    parser.add_argument("--thresholds", default=",".join(str(t) for t in THRESHOLDS))
    parser.add_argument("--rule", default="input", choices=("input", "ladder"),
                        help="stopping rule (the ExecuTorch bundle records the default, input)")
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()

    import torch

    import edgeir
    from edgeir.data.photos import builtin_photos, degrade, fit_to
    from edgeir.evaluation.metrics import psnr
    from edgeir.plugins.flexir import adaptive

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    from edgeir.discovery import methods
    from edgeir.target import require

    weights = args.weights
    train_info = None
    if weights is None and not args.train:
        shipped = methods().get("flexir").shipped_weights(args.variant, args.task)
        weights = str(shipped.path) if shipped else None
        train_info = shipped.provenance if shipped else None
    if weights is None:
        from edgeir.training.finetune import finetune

        start = pretrain_full_model(args, out / f"flexir-{args.variant}-{args.task}-stage-a.safetensors")
        result = finetune("flexir", variant=args.variant, task=args.task, steps=args.steps, weights=str(start["path"]),
                          output=out / f"flexir-{args.variant}-{args.task}.safetensors", crop=64, batch=4,
                          lr=args.lr, eval_count=4, eval_crop=64)
        weights = result.weights
        train_info = {"stage_a": {k: v for k, v in start.items() if k != "path"},
                      "stage_b": {"steps": args.steps, "lr": args.lr, "seconds": round(result.report.seconds, 1),
                                  "eval": result.provenance["eval"]}}
    model = edgeir.build_model("flexir", variant=args.variant, task=args.task, weights=weights)
    groups = model.config.groups
    exits = tuple(range(1, groups + 1))
    size = (args.region, args.region)
    costs = adaptive.StageCosts.from_model(model, size)
    rule = adaptive.calibrate_model(model, args.task, size, exits, args.rule)
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    drivers = {"eager": adaptive.EagerStages(model)}
    if args.executorch:
        from edgeir.bundle import Bundle
        from edgeir.discovery import targets

        bundle = Bundle.open(args.bundle) if args.bundle else edgeir.export(
            "flexir", "executorch", variant=args.variant, task=args.task, weights=str(weights),
            output=out / "adaptive", input_size=size, exits="all")
        rule_differs = args.rule == adaptive.DEFAULT_RULE and adaptive.bundle_rule(bundle.manifest) != rule
        if rule_differs or adaptive.StageCosts.from_manifest(bundle.manifest) != costs:
            raise SystemExit("the exported bundle's stopping rule or stage costs differ from the eager model's")
        drivers["executorch"] = require(targets().get("executorch").runtime(bundle))

    def timed(fn):
        samples = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            value = fn()
            samples.append(time.perf_counter() - start)
        return value, float(np.median(samples))

    gflops_before = sgemm_gflops(args.threads)
    report: dict = {"variant": args.variant, "task": args.task, "region": args.region, "train": train_info,
                    "weights": str(weights), "stopping_rule": rule.to_json(), "drivers": {}}
    photos = builtin_photos()
    for driver_name, driver in drivers.items():
        per_threshold = {t: {"exits": [], "time": [], "macs": [], "psnr": [], "region_macs": []} for t in thresholds}
        full = {"time": [], "psnr": [], "macs": []}
        images = []
        for index, (name, photo) in enumerate(photos):
            clean = fit_to(photo, 2 * args.region, 2 * args.region)
            noisy, _ = degrade(clean, args.task, index)
            image = np.ascontiguousarray(noisy.transpose(2, 0, 1)[None], dtype=np.float32)
            truth = clean.transpose(2, 0, 1)[None]
            restored, seconds = timed(lambda d=driver, x=image: adaptive.regular_inference(d, x, pointer=groups))
            full["time"].append(seconds)
            full["psnr"].append(psnr(np.clip(restored, 0, 1), truth))
            full["macs"].append(4 * costs.regular(groups))
            row = {"photo": name, "input_psnr_db": round(psnr(image, truth), 2),
                   "full_psnr_db": round(full["psnr"][-1], 2), "thresholds": {}}
            for t in thresholds:
                res, seconds = timed(lambda t=t, d=driver, x=image: adaptive.adaptive_inference(
                    d, x, rule=rule, threshold=t, costs=costs))
                p = psnr(np.clip(res.image, 0, 1), truth)
                bucket = per_threshold[t]
                bucket["exits"] += res.exits
                bucket["time"].append(seconds)
                bucket["macs"].append(res.macs)
                bucket["psnr"].append(p)
                bucket["region_macs"] += res.region_macs
                row["thresholds"][f"{t:.2f}"] = {"exits": res.exits, "macs_g": round(res.macs / 1e9, 3),
                                                 "scores": [round(r[0], 5) for r in res.scores],
                                                 "seconds": round(seconds, 4), "psnr_db": round(p, 2)}
            images.append(row)
        summary = {}
        for t, bucket in per_threshold.items():
            summary[f"{t:.2f}"] = {
                "mean_exit": round(float(np.mean(bucket["exits"])), 3),
                "time_vs_full": round(sum(bucket["time"]) / sum(full["time"]), 3),
                "macs_vs_full": round(sum(bucket["macs"]) / sum(full["macs"]), 3),
                "psnr_db": round(float(np.mean(bucket["psnr"])), 3),
                "psnr_vs_full_db": round(float(np.mean(bucket["psnr"]) - np.mean(full["psnr"])), 3),
                "max_region_macs_vs_full": round(max(bucket["region_macs"]) / costs.regular(groups), 4),
                "exit_counts": {str(k): bucket["exits"].count(k) for k in exits},
            }
        report["drivers"][driver_name] = {"full_model": {"seconds": round(sum(full["time"]), 3),
                                                         "psnr_db": round(float(np.mean(full["psnr"])), 3)},
                                          "thresholds": summary, "images": images}
        print(f"{driver_name}: full model pointer {groups}: {sum(full['time']):.2f} s, "
              f"{np.mean(full['psnr']):.2f} dB")
        print(f"stopping rule: {rule.to_json()}")
        print("| threshold | exits taken (1/2/..) | mean exit | time vs full | MACs vs full | max region MACs vs full "
              "| PSNR vs full (dB) |")
        print("|---|---|---|---|---|---|---|")
        for t, s in summary.items():
            counts = " / ".join(str(c) for c in s["exit_counts"].values())
            print(f"| {t} | {counts} | {s['mean_exit']:.2f} | {s['time_vs_full']:.2f} | {s['macs_vs_full']:.3f} | "
                  f"{s['max_region_macs_vs_full']:.3f} | {s['psnr_vs_full_db']:+.3f} |")
    if "executorch" in drivers:
        same = all(a["thresholds"][t]["exits"] == b["thresholds"][t]["exits"]
                   for a, b in zip(report["drivers"]["eager"]["images"], report["drivers"]["executorch"]["images"],
                                   strict=True) for t in a["thresholds"])
        report["executorch_matches_eager_exits"] = same
        print(f"ExecuTorch staged program takes the same exits as the eager controller: {same}")
    report["sgemm_gflops"] = {"before": round(gflops_before, 1), "after": round(sgemm_gflops(args.threads), 1),
                              "threads": args.threads}
    print(f"sgemm fp32 {args.threads} thread(s): {report['sgemm_gflops']['before']} GFLOP/s before, "
          f"{report['sgemm_gflops']['after']} after")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"flexir_adaptive_{args.variant}_{args.task}.json"
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
