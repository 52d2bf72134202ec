"""fp32 vs PTQ int8 vs QAT int8, per target: PSNR on the evaluation split, artifact size, latency ratio.

For a method's variant on a task (default: anyir mobile, denoise25): fine-tune briefly on the built-in
photos (or take --weights), export fp32, int8 PTQ and int8 QAT for ExecuTorch XNNPACK and ONNX
Runtime, then measure every artifact in this one run:

* PSNR against ground truth on the fixed evaluation split (``edgeir.data.evaluation_pairs``, images
  training and calibration never see), and the float model's PSNR on the same crops;
* artifact size (MB, the manifest's artifact files);
* median latency over --runs runs with --threads threads, as a ratio to that target's fp32 artifact.

    OMP_NUM_THREADS=1 python bench/quant_table.py anyir --variant mobile --task denoise25 \\
        --finetune-steps 300 --qat-steps 200 -o bench-out

Prints a Markdown table; writes the rows as JSON next to the bundles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def evaluate_artifact(runner, program: str, pairs, size: int) -> float:
    from edgeir.metrics import psnr

    values = []
    for pair in pairs:
        degraded = pair.degraded.numpy()[:, :, :size, :size]
        clean = pair.clean.numpy()[:, :, :size, :size]
        values.append(psnr(runner.run(program, [degraded])[0], clean))
    return float(np.mean(values))


def latency_ms(runner, program: str, shape, runs: int) -> float:
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    runner.run(program, [x])
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(program, [x])
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", nargs="?", default="anyir")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default="denoise25")
    parser.add_argument("--weights", default=None, help="float checkpoint (default: fine-tune --finetune-steps)")
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--qat-steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=128, help="program size (square)")
    parser.add_argument("--targets", default="executorch,onnx")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", default="bench-quant")
    args = parser.parse_args()

    import torch

    import edgeir
    from edgeir.data import evaluation_pairs
    from edgeir.discovery import targets

    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    weights = args.weights
    if weights is None:
        from edgeir.finetune import finetune

        weights = out / f"{args.method}-{args.variant}-{args.task}.safetensors"
        finetune(args.method, task=args.task, variant=args.variant, steps=args.finetune_steps, output=weights)
    pairs = evaluation_pairs(args.task, crop=args.size)
    rows = []
    for target in args.targets.split(","):
        fp32_latency = None
        for label, quant, qat in (("fp32", "fp32", 0), ("PTQ int8", "int8", 0), ("QAT int8", "int8", args.qat_steps)):
            bundle = edgeir.export(args.method, target, variant=args.variant, task=args.task, weights=weights,
                                   quant=quant, qat_steps=qat, input_size=(args.size, args.size),
                                   output=out / f"{target}-{label.replace(' ', '-')}")
            runner = targets().get(target).profile_runner(bundle, args.threads)
            program = bundle.programs[0]["name"]
            size_mb = sum((bundle.path / f).stat().st_size for f in bundle.manifest["files"]) / 1e6
            latency = latency_ms(runner, program, (1, 3, args.size, args.size), args.runs)
            fp32_latency = fp32_latency or latency
            row = {"method": args.method, "target": target, "scheme": label, "psnr_db": round(
                evaluate_artifact(runner, program, pairs, args.size), 2), "size_mb": round(size_mb, 3),
                "latency_ms": round(latency, 2), "latency_ratio": round(latency / fp32_latency, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for target in args.targets.split(","):
        base = next(r["psnr_db"] for r in rows if r["target"] == target and r["scheme"] == "fp32")
        for r in rows:
            if r["target"] == target:
                r["drop_db"] = round(base - r["psnr_db"], 2)
    (out / "quant_table.json").write_text(json.dumps(rows, indent=2))
    print("| method | target | scheme | PSNR (dB) | drop vs fp32 (dB) | size (MB) | latency / fp32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['target']} | {r['scheme']} | {r['psnr_db']:.2f} | {r['drop_db']:.2f} | "
              f"{r['size_mb']:.2f} | {r['latency_ratio']:.2f} |")


if __name__ == "__main__":
    main()
