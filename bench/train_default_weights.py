"""Train the small weights edgeir ships: each method's tiny and mobile variants on denoise25.

Reproducible: seeded crops, degradations and initialisation, on scikit-image's bundled photos
(the held-out split is never trained on), one CPU thread by default. The weights are stored as
float16 safetensors (half the size; float32 models load them exactly as rounded) in
``edgeir/weights/<method>-<variant>-denoise25.safetensors``, with their provenance and the
evaluation PSNR of the stored (rounded) weights in the header; ``edgeir export`` without
``--weights`` then uses them and writes that provenance into the manifest.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_default_weights.py --methods anyir

Figures (this host, 1 thread): see docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

TASK = "denoise25"
#: Steps and batch per variant: a few CPU minutes each, enough to restore clearly better than the input.
SCHEDULE = {"tiny": {"steps": 300, "batch": 8, "lr": 2e-3}, "mobile": {"steps": 150, "batch": 4, "lr": 2e-3}}
SEED = 0


def train_one(method: str, variant: str, out_dir: Path, *, steps: int, batch: int, lr: float, seed: int) -> dict:
    """Fine-tune from a seeded random init, round to float16, re-evaluate and write the shipped file."""
    import torch
    from safetensors.torch import load_file, save_file

    from edgeir.data import evaluation_pairs, load_images
    from edgeir.default_weights import PROVENANCE_KEY, weights_filename
    from edgeir.discovery import methods
    from edgeir.evaluation import evaluate
    from edgeir.finetune import finetune

    command = f"bench/train_default_weights.py --methods {method} --variants {variant} --seed {seed}"
    with tempfile.TemporaryDirectory() as tmp:
        result = finetune(method, task=TASK, variant=variant, steps=steps, batch=batch, lr=lr, seed=seed,
                          weights="random", output=Path(tmp) / "w.safetensors", device="cpu", command=command)
        state = load_file(str(result.weights))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    spec = methods().get(method)
    model = spec.build_model(variant, TASK)
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in half.items()}, strict=True)
    io = spec.io(variant, TASK)
    prov = result.provenance
    pairs = evaluation_pairs(TASK, source=load_images(None), crop=prov["eval"]["crop"], count=prov["eval"]["crops"],
                             seed=seed, in_channels=io.in_channels, scale=io.scale)
    final = evaluate(model, pairs, device=torch.device("cpu"))
    prov["storage"] = "float16"
    prov["eval"].update(psnr_db=round(final.psnr_db, 3), ssim=round(final.exits[list(final.exits)[-1]]["ssim"], 4),
                        exits=final.exits, note="of the stored float16-rounded weights")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / weights_filename(method, variant, TASK)
    save_file(half, str(path), metadata={PROVENANCE_KEY: json.dumps(prov)})
    return {"method": method, "variant": variant, "file": str(path), "bytes": path.stat().st_size,
            "seconds": prov["seconds"], "steps": steps, "eval_psnr_db": prov["eval"]["psnr_db"],
            "input_psnr_db": prov["eval"]["input_psnr_db"], "ssim": prov["eval"]["ssim"]}


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgeir.discovery import methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=None,
                        help="methods to train (default: every registered method with denoise25)")
    parser.add_argument("--variants", nargs="*", default=list(SCHEDULE), choices=list(SCHEDULE))
    parser.add_argument("--steps", type=int, default=None, help="override the steps of every variant")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "edgeir" / "weights"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.methods or [n for n in methods().registry.names() if TASK in methods().get(n).tasks]
    rows = []
    for name in names:
        spec = methods().get(name)
        for variant in args.variants:
            if variant not in spec.variant_names:
                print(f"{name}: no {variant} variant; skipped", file=sys.stderr)
                continue
            plan = dict(SCHEDULE[variant])
            if args.steps:
                plan["steps"] = args.steps
            row = train_one(name, variant, Path(args.out), seed=args.seed, **plan)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
