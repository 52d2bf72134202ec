"""fp32 vs PTQ int8 vs QAT int8, per method and target: PSNR on the evaluation split, size, latency ratio.

For each method's variant on a task (default: every registered method with a ``mobile`` variant and
``denoise25``, from the weights edgeir ships for it, i.e. a short fine-tuning on the built-in photos;
``--weights`` for one method), export fp32, int8 PTQ and int8 QAT (``--qat-steps``) for ExecuTorch
XNNPACK and ONNX Runtime at ``--size``, then measure in this one run:

* PSNR against ground truth on the fixed evaluation split (``edgeir eval``'s crops, which training
  and calibration never see), of every artifact and of the eager float model;
* artifact size (the manifest's artifact files);
* latency of the bundle's photo program (with the programs that feed it: DiffIR's int8 bundle runs
  ``prior`` then ``restore``), the three schemes of a target timed interleaved round by round, as a
  ratio to that target's fp32 artifact (one process, so the ratios hold on a noisy host).

Bundles are kept under ``-o`` and reused when the run is repeated (``--fresh`` re-exports), so an
interrupted run resumes where it stopped.

    OMP_NUM_THREADS=1 python bench/quant_table.py --methods anyir restormer --qat-steps 100 -o bench-out/quant

Prints one Markdown table; writes the rows to ``<output>/quant_table.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SCHEMES = (("fp32", "fp32", False), ("PTQ int8", "int8", False), ("QAT int8", "int8", True))


def default_methods(variant: str, task: str) -> list[str]:
    """Registered methods with ``variant`` and ``task``; a TLC form (``-local``) shares its global
    model's weights and equals it at the table's size, so it is left out."""
    from edgeir.discovery import methods

    registry = methods()
    return [name for name in registry.registry.names() if not name.endswith("-local")
            and variant in registry.get(name).variant_names and task in registry.get(name).tasks]


def export_or_reuse(method: str, target: str, quant: str, qat_steps: int, args, weights, out: Path):
    """The bundle for one row: reused when ``out`` holds one exported the same way, else exported."""
    import edgeir
    from edgeir.bundle import MANIFEST, Bundle

    found = sorted(out.glob(f"*/{MANIFEST}")) if out.is_dir() else []
    if found and not args.fresh:
        bundle = Bundle.open(found[0].parent)
        quantization = bundle.manifest.get("quantization") or {}
        same = quantization.get("qat_steps", 0) == qat_steps and bundle.manifest["quant"] == quant and \
            bundle.manifest["weights"].get("state_sha256") == weights_sha(method, args, weights)
        if same:
            return bundle
    if out.exists():
        shutil.rmtree(out)
    return edgeir.export(method, target, variant=args.variant, task=args.task, weights=weights, quant=quant,
                         qat_steps=qat_steps, input_size=(args.size, args.size), output=out)


_SHA: dict[str, str] = {}


def weights_sha(method: str, args, weights) -> str:
    """State-dict sha256 of the float model a row starts from (what a reused bundle must match)."""
    if method not in _SHA:
        from edgeir.weights.build import build_model_with_weights

        _, info = build_model_with_weights(method, args.variant, args.task, weights)
        _SHA[method] = info.state_sha256
    return _SHA[method]


def photo_program(bundle) -> dict:
    """The program that restores a photo (the first one that runs on photos and returns an image)."""
    from edgeir.runtime.feeds import runs_on_photos

    for program in bundle.programs:
        if runs_on_photos(program, bundle.programs) and program["outputs"][0]["kind"] == "image":
            return program
    raise SystemExit(f"bundle {bundle.path} has no program that restores a photo")


def interleaved_latency(calls: dict, shape: tuple[int, ...], runs: int, warmup: int = 1) -> dict[str, float]:
    """Median milliseconds of each call, timed round by round on one random input."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(warmup):
        for call in calls.values():
            call(x)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call(x)
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def table_rows(method: str, args, weights) -> list[dict]:
    from edgeir.discovery import targets
    from edgeir.evaluation.accuracy import run_eval, run_on_photo
    from edgeir.target import require

    eager = run_eval(method, task=args.task, variant=args.variant, weights=weights, count=args.eval_count,
                     crop=args.size)
    rows = []
    for target in args.targets.split(","):
        bundles = {}
        for label, quant, qat in SCHEMES:
            out = Path(args.output) / method / f"{target}-{label.replace(' ', '-')}"
            bundles[label] = export_or_reuse(method, target, quant, args.qat_steps if qat else 0, args, weights, out)
        calls, sizes, psnrs = {}, {}, {}
        for label, bundle in bundles.items():
            runner = require(targets().get(target).profile_runner(bundle, args.threads))
            program = photo_program(bundle)
            calls[label] = lambda x, r=runner, p=program, b=bundle: run_on_photo(r, p, b.programs, x)
            sizes[label] = sum((bundle.path / f).stat().st_size for f in bundle.manifest["files"])
            evaluated = run_eval(str(bundle.path), task=args.task, count=args.eval_count)
            psnrs[label] = evaluated.result.exits[program["name"]]["psnr_db"]
        shape = (1, 3, args.size, args.size)
        latency = interleaved_latency(calls, shape, args.runs)
        for label, bundle in bundles.items():
            quantization = bundle.manifest.get("quantization") or {}
            rows.append({
                "method": method, "variant": args.variant, "task": args.task, "target": target, "scheme": label,
                "bundle": str(bundle.path), "psnr_db": round(psnrs[label], 3),
                "float_psnr_db": round(eager.result.psnr_db, 3),
                "drop_vs_float_db": round(eager.result.psnr_db - psnrs[label], 3),
                "input_psnr_db": round(eager.result.input_psnr_db or float("nan"), 3),
                "size_mb": round(sizes[label] / 1e6, 3), "latency_ms": round(latency[label], 2),
                "latency_ratio": round(latency[label] / latency["fp32"], 3),
                "qat_steps": quantization.get("qat_steps", 0),
                "delegation": {name: d.get("coverage") for name, d in
                               (bundle.manifest["target_details"].get("delegation") or {}).items()},
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=None, help="default: every method with the variant and task")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default="denoise25")
    parser.add_argument("--weights", default=None,
                        help="float checkpoint (one method only; default: the weights edgeir ships)")
    parser.add_argument("--qat-steps", type=int, default=100)
    parser.add_argument("--size", type=int, default=128, help="program size (square)")
    parser.add_argument("--targets", default="executorch,onnx")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-count", type=int, default=6, help="evaluation crops")
    parser.add_argument("--fresh", action="store_true", help="re-export bundles that are already there")
    parser.add_argument("-o", "--output", default="bench-quant")
    args = parser.parse_args(argv)

    import torch

    from edgeir.discovery import methods

    torch.set_num_threads(args.threads)
    names = args.methods or default_methods(args.variant, args.task)
    if args.weights and len(names) != 1:
        parser.error("--weights applies to one method; name it with --methods")
    rows = []
    for method in names:
        weights = args.weights
        if weights is None and methods().get(method).shipped_weights(args.variant, args.task) is None:
            print(f"{method}: no shipped {args.variant} weights for {args.task} (bench/train_default_weights.py); "
                  "skipped", file=sys.stderr)
            continue
        rows += table_rows(method, args, weights)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quant_table.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| method | target | scheme | PSNR (dB) | vs float (dB) | size (MB) | latency / fp32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['target']} | {r['scheme']} | {r['psnr_db']:.2f} | {-r['drop_vs_float_db']:+.2f} "
              f"| {r['size_mb']:.2f} | {r['latency_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
