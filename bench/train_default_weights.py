"""Train the small weights edgeir ships: each method's tiny and mobile variants on denoise25.

Reproducible: seeded crops, degradations and initialisation, on scikit-image's bundled photos
(the held-out split is never trained on), one CPU thread by default. The weights are stored as
float16 safetensors (half the size; float32 models load them exactly as rounded) in
each plugin's ``weights/<variant>-denoise25.safetensors`` (its ``MethodSpec.weights``), with their provenance and the
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
#: Where a method trains differently. FlexIR first trains its full model as the stand-in for the SwinIR
#: teacher (``teacher_steps``, see ``edgeir.plugins.flexir.training``), then distils progressively.
OVERRIDES: dict[tuple[str, str], dict] = {
    # Hi-IR's window attention learns slower: 150 steps left mobile at 24.6 dB, 400 reach 28.2 dB.
    ("hiir", "tiny"): {"steps": 400},
    ("hiir", "mobile"): {"steps": 400},
    ("flexir", "tiny"): {"steps": 300, "batch": 8, "lr": 5e-4, "teacher_steps": 300, "teacher_lr": 2e-3},
    ("flexir", "mobile"): {"steps": 200, "batch": 4, "lr": 2e-4, "teacher_steps": 200, "teacher_lr": 1e-3},
}
SEED = 0


def teacher_stand_in(method: str, variant: str, path: Path, *, steps: int, batch: int, lr: float,
                     seed: int, crop: int = 64, device: str = "cpu", start: Path | None = None) -> dict:
    """FlexIR stage A: the full model with Charbonnier; written to ``path``.

    From a random init its head is then copied into every exit (what an official SwinIR tail gives);
    from ``start`` (a trained FlexIR) the exits keep their own heads: only the teacher gets better.
    """
    import torch

    import edgeir
    from edgeir.data.datasets import TrainingPairs, load_images
    from edgeir.plugins.flexir.training import train_full_model
    from edgeir.training.loop import CharbonnierObjective, fine_tune, save_weights

    torch.manual_seed(seed)
    model = edgeir.build_model(method, variant=variant, task=TASK, weights=str(start) if start else "random")
    # A continued file already saw this seed's batches; its teacher stage draws fresh crops.
    train = TrainingPairs(TASK, source=load_images(None), crop=crop, batch=batch, seed=seed + 1 if start else seed)
    if start is None:
        report = train_full_model(model, train, steps=steps, lr=lr, device=device)
        what = "full model (pointer N) with Charbonnier, head copied into every exit: the teacher stand-in"
    else:
        report = fine_tune(model, CharbonnierObjective(model), train, steps=steps, lr=lr, device=device,
                           progress_desc="FlexIR full model (teacher)")
        what = "full model (pointer N) trained further with Charbonnier from the continued weights: the teacher"
    model.cpu()
    save_weights(model, path)
    return {"steps": steps, "batch": batch, "crop": crop, "lr": lr, "seconds": round(report.seconds, 1),
            "device": report.device, "what": what}


def train_one(method: str, variant: str, out_dir: Path | None, *, steps: int, batch: int, lr: float, seed: int,
              teacher_steps: int = 0, teacher_lr: float | None = None, crop: int = 64, device: str = "cpu",
              command: str | None = None, continue_from: Path | None = None, eval_every: int | None = None) -> dict:
    """Fine-tune from a seeded random init (or ``continue_from``), round to float16, re-evaluate and write the
    shipped file."""
    import torch
    from safetensors.torch import load_file, save_file

    from edgeir.data.datasets import evaluation_pairs, load_images
    from edgeir.discovery import methods
    from edgeir.evaluation.accuracy import evaluate
    from edgeir.training.finetune import finetune
    from edgeir.weights.shipped import PROVENANCE_KEY

    command = command or f"bench/train_default_weights.py --methods {method} --variants {variant} --seed {seed}"
    with tempfile.TemporaryDirectory() as tmp:
        start, stage_a = "random", None
        if continue_from is not None:
            from edgeir.weights.shipped import read_provenance

            previous = read_provenance(continue_from) or {}
            start = Path(tmp) / "previous.safetensors"
            start.write_bytes(Path(continue_from).read_bytes())
            stage_a = {"source": f"the previously shipped {continue_from.name}, trained further",
                       **{k: previous.get(k) for k in ("command", "steps", "batch", "crop", "lr", "seconds")},
                       "its_start_weights": previous.get("start_weights"),
                       "its_eval": {k: v for k, v in previous.get("eval", {}).items() if k != "note"}}
            if teacher_steps:
                teacher = Path(tmp) / "teacher.safetensors"
                stage_a["then_teacher"] = teacher_stand_in(method, variant, teacher, steps=teacher_steps, batch=batch,
                                                           lr=teacher_lr or lr, seed=seed, crop=crop, device=device,
                                                           start=start)
                start = teacher
        elif teacher_steps:
            start = Path(tmp) / "teacher.safetensors"
            stage_a = teacher_stand_in(method, variant, start, steps=teacher_steps, batch=batch,
                                       lr=teacher_lr or lr, seed=seed, crop=crop, device=device)
        result = finetune(method, task=TASK, variant=variant, steps=steps, batch=batch, lr=lr, seed=seed, crop=crop,
                          weights=str(start), output=Path(tmp) / "w.safetensors", device=device, command=command,
                          eval_every=eval_every)
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
    if stage_a is not None:
        prov["start_weights"] = {"source": "teacher stand-in trained by this script", **stage_a}
    prov["eval"].update(psnr_db=round(final.psnr_db, 3), ssim=round(final.exits[list(final.exits)[-1]]["ssim"], 4),
                        exits=final.exits, note="of the stored float16-rounded weights")
    path = output_path(method, variant, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, str(path), metadata={PROVENANCE_KEY: json.dumps(prov)})
    return {"method": method, "variant": variant, "file": str(path), "bytes": path.stat().st_size,
            "seconds": prov["seconds"], "steps": steps, "eval_psnr_db": prov["eval"]["psnr_db"],
            "input_psnr_db": prov["eval"]["input_psnr_db"], "ssim": prov["eval"]["ssim"]}


def output_path(method: str, variant: str, out_dir: Path | None) -> Path:
    """Where the trained file goes: the plugin's own weights folder (what ``MethodSpec.weights`` declares), or
    ``<out_dir>/<method>-<variant>-<task>.safetensors`` when an output folder is given."""
    from edgeir.discovery import methods
    from edgeir.weights.shipped import weights_file

    if out_dir is not None:
        return out_dir / f"{method}-{variant}-{TASK}.safetensors"
    spec = methods().get(method)
    declared = spec.shipped_weights(variant, TASK)
    return declared.path if declared else weights_file(sys.modules[spec.build.__module__].__file__, variant, TASK)


def shipped_files() -> list[Path]:
    """Every weights file the registered methods declare (a TLC form's table is its global model's)."""
    from edgeir.discovery import methods

    seen: dict[Path, None] = {}
    for name in methods().registry.names():
        for entry in methods().get(name).weights:
            seen.setdefault(entry.path)
    return [p for p in seen if p.is_file()]


def shipped_table(weights_dir: Path | None) -> str:
    """A Markdown table of the shipped files, from the provenance in their headers (what docs/training.md shows)."""
    from safetensors import safe_open

    from edgeir.weights.shipped import read_provenance

    lines = ["| weights | params | steps x batch (crop), lr | train time | size | eval PSNR (SSIM) | noisy input |",
             "|---|---|---|---|---|---|---|"]
    paths = sorted(weights_dir.glob(f"*-{TASK}.safetensors")) if weights_dir else shipped_files()
    for path in paths:
        prov = read_provenance(path)
        if not prov:
            continue

        with safe_open(str(path), framework="pt") as handle:
            params = sum(_numel(handle.get_slice(k).get_shape()) for k in handle.keys())
        start = prov.get("start_weights", {})
        teacher = _start_note(start)
        ev = prov["eval"]
        lines.append(f"| {prov['method']} `{prov['variant']}` | {params / 1e6:.3f}M | "
                     f"{prov['steps']} x {prov['batch']} ({prov['crop']}), {prov['lr']:g}{teacher} | "
                     f"{prov['seconds']:.0f} s | "
                     f"{path.stat().st_size / 1e6:.2f} MB | {ev['psnr_db']:.2f} dB ({ev['ssim']:.3f}) | "
                     f"{ev['input_psnr_db']:.2f} dB |")
    return "\n".join(lines)


def _start_note(start: dict) -> str:
    """What the run started from, for the table (the whole chain is in the file's header)."""
    if not start.get("steps"):
        return ""
    if "previously shipped" not in start.get("source", ""):
        return f" after a {start['steps']}-step teacher stand-in"
    chain, seconds, step = [], 0.0, start
    while step and "previously shipped" in step.get("source", ""):
        chain.append(str(step["steps"]))
        seconds += step.get("seconds") or 0
        step = step.get("its_start_weights") or {}
    if step.get("steps"):
        chain.append(f"{step['steps']} (teacher stand-in)")
        seconds += step.get("seconds") or 0
    teacher = start.get("then_teacher")
    more = f", then {teacher['steps']} teacher steps at {teacher['lr']:g}" if teacher else ""
    seconds += teacher.get("seconds", 0) if teacher else 0
    return f" continuing {' + '.join(reversed(chain))} earlier steps{more} ({seconds:.0f} s before this run)"


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgeir.discovery import methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=None,
                        help="methods to train (default: every registered method with denoise25)")
    parser.add_argument("--variants", nargs="*", default=list(SCHEDULE), choices=list(SCHEDULE))
    parser.add_argument("--steps", type=int, default=None, help="override the steps of every variant")
    parser.add_argument("--teacher-steps", type=int, default=None,
                        help="override the teacher stand-in steps of methods that train one first (FlexIR)")
    parser.add_argument("--batch", type=int, default=None, help="override the batch of every variant")
    parser.add_argument("--continue", dest="continue_", action="store_true",
                        help="start from the weights shipped in --out instead of a random init (FlexIR: no teacher "
                             "stage unless --teacher-steps, which then trains the full model further first)")
    parser.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    parser.add_argument("--teacher-lr", type=float, default=None, help="override the teacher stand-in's learning rate")
    parser.add_argument("--crop", type=int, default=64, help="side of the training crops (default 64)")
    parser.add_argument("--device", default="cpu",
                        help="torch device to train on (default cpu, so the shipped files are reproducible here; "
                             "cuda trains the same schedule faster, and longer ones in reasonable time)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--eval-every", type=int, default=None,
                        help="evaluate on the held-out split every N steps (default: at the end only)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", default=None,
                        help="folder for the trained files (default: each plugin's own weights/ folder, what it ships)")
    parser.add_argument("--table", action="store_true", help="print the table of the files in --out and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(shipped_table(Path(args.out) if args.out else None))
        return 0
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # A method that loads another's weights (a TLC form) has none of its own to train.
    names, tables = [], []
    for n in args.methods or methods().registry.names():
        spec = methods().get(n)
        if TASK in spec.tasks and not (spec.weights and spec.weights in tables):
            names.append(n)
            tables.append(spec.weights)
    rows = []
    for name in names:
        spec = methods().get(name)
        for variant in args.variants:
            if variant not in spec.variant_names:
                print(f"{name}: no {variant} variant; skipped", file=sys.stderr)
                continue
            plan = {**SCHEDULE[variant], **OVERRIDES.get((name, variant), {})}
            if args.steps:
                plan["steps"] = args.steps
            if args.batch:
                plan["batch"] = args.batch
            if args.lr:
                plan["lr"] = args.lr
            if "teacher_steps" in plan:
                if args.teacher_steps is not None:
                    plan["teacher_steps"] = args.teacher_steps
                if args.teacher_lr:
                    plan["teacher_lr"] = args.teacher_lr
            if args.continue_:
                if args.teacher_steps is None:  # a continuation trains no teacher unless asked
                    plan.pop("teacher_steps", None)
                    plan.pop("teacher_lr", None)
                plan["continue_from"] = output_path(name, variant, Path(args.out) if args.out else None)
            out = Path(args.out) if args.out else None
            row = train_one(name, variant, out, seed=args.seed, crop=args.crop, device=args.device,
                            eval_every=args.eval_every,
                            command="bench/train_default_weights.py " + " ".join(argv if argv is not None
                                                                                 else sys.argv[1:]), **plan)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
