"""Fine-tuning a registered method on a task: what ``edgeir finetune`` runs.

Builds the method's model (from ``weights``, the weights edgeir ships, or a seeded random
initialisation), makes training and evaluation data from a folder or the built-in photos for the
task (:mod:`edgeir.data.datasets`), trains with the method's objective (:mod:`edgeir.training.loop`) and writes a
``.safetensors`` file that ``edgeir export --weights`` loads, with its provenance in the header.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeir.training.loop import TrainReport


@dataclass(frozen=True)
class FinetuneResult:
    """The weights file written, the training report, and the provenance stored in the file."""

    weights: Path
    report: TrainReport
    provenance: dict[str, Any]


def default_output(method: str, variant: str, task: str) -> Path:
    """``finetuned/<method>-<variant>-<task>.safetensors``."""
    return Path("finetuned") / f"{method}-{variant}-{task}.safetensors"


def finetune(
    method: str,
    *,
    task: str | None = None,
    variant: str | None = None,
    data: str | Path | None = None,
    steps: int = 1000,
    weights: str | Path | None = None,
    output: str | Path | None = None,
    crop: int = 64,
    batch: int = 4,
    lr: float = 2e-4,
    seed: int = 0,
    eval_every: int | None = None,
    eval_count: int = 6,
    eval_crop: int = 128,
    resume: bool = False,
    checkpoint_every: int | None = None,
    device: str | None = None,
    command: str | None = None,
) -> FinetuneResult:
    """Fine-tune ``method`` on ``task`` and write its weights.

    Args:
        method: Registered method name.
        task: Task to train for (method default when None).
        variant: Model variant (method default when None).
        data: Folder of clean images; None = the built-in photos.
        steps: Optimiser steps.
        weights: Starting weights: a checkpoint, ``"random"``, or None (edgeir's shipped weights for
            this method/variant/task when there are some, else random).
        output: ``.safetensors`` file to write (default :func:`default_output`); the training
            state goes beside it as ``<stem>.state.pt`` and the report as ``<stem>.train.json``.
        crop: Side of the clean training crops (rounded up to the model's size multiple).
        batch: Crops per step.
        lr: Peak learning rate.
        seed: Seed of model initialisation, crops and degradations.
        eval_every: Steps between evaluations on the held-out split (default: at the end only).
        eval_count: Evaluation crops.
        eval_crop: Side of the evaluation crops.
        resume: Continue from ``<stem>.state.pt``.
        checkpoint_every: Steps between training-state saves (default: at the end only).
        device: Torch device (default CUDA when present, else CPU).
        command: The command line to record in the provenance.

    Raises:
        UsageError: for unknown names, bad settings or unusable data.
        CheckpointError: if ``weights`` or the resume state do not fit.
    """
    import torch

    from edgeir import __version__
    from edgeir.data.datasets import TrainingPairs, evaluation_pairs, load_images
    from edgeir.discovery import methods
    from edgeir.evaluation.accuracy import round_up
    from edgeir.training.loop import fine_tune, make_objective
    from edgeir.weights.build import build_model_with_weights
    from edgeir.weights.shipped import PROVENANCE_KEY

    spec = methods().get(method)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    io = spec.io(variant, task)
    multiple = io.size_multiple * io.scale
    crop, eval_crop = round_up(crop, multiple), round_up(eval_crop, multiple)
    output = Path(output) if output else default_output(method, variant, task)
    if output.suffix != ".safetensors":
        output = output / default_output(method, variant, task).name if output.suffix == "" else output
    state_path = output.with_name(f"{output.stem}.state.pt")
    images = load_images(data)
    torch.manual_seed(seed)
    model, start = build_model_with_weights(method, variant, task, weights, seed)
    train = TrainingPairs(task, source=images, crop=crop, batch=batch, seed=seed, in_channels=io.in_channels,
                          scale=io.scale)
    pairs = evaluation_pairs(task, source=images, crop=eval_crop, count=eval_count, seed=seed,
                             in_channels=io.in_channels, scale=io.scale)
    provenance: dict[str, Any] = {
        "trained_by": f"edgeir {__version__}",
        "command": command or " ".join(sys.argv),
        "method": method, "variant": variant, "task": task,
        "data": images.source, "train_images": len(images.train),
        "eval_images": [image.name for image in images.evaluation],
        "steps": steps, "batch": batch, "crop": crop, "lr": lr, "seed": seed,
        "start_weights": {k: v for k, v in start.to_json().items() if k != "note"},
        "torch": torch.__version__, "python": platform.python_version(),
    }
    provenance["start_weights"].pop("provenance", None)
    report = fine_tune(model, make_objective(spec, model), train, steps=steps, lr=lr, eval_pairs=pairs,
                       eval_every=eval_every, checkpoint=state_path, checkpoint_every=checkpoint_every,
                       resume=state_path if resume else False, device=device,
                       progress_desc=f"finetune {method}-{variant}-{task}")
    final = report.final_eval
    provenance.update(
        seconds=round(report.seconds, 1), device=report.device, world_size=report.world_size,
        final_loss=report.final_loss,
        eval={"crops": len(pairs), "crop": eval_crop, "psnr_db": round(final.psnr_db, 3) if final else None,
              "ssim": round(list(final.exits.values())[-1].get("ssim", float("nan")), 4) if final else None,
              "input_psnr_db": round(final.input_psnr_db, 3) if final and final.input_psnr_db else None,
              "exits": final.exits if final else {}},
        skipped_files=[name for name, _ in report.skipped_files],
    )
    from edgeir.training.loop import save_weights

    if report.world_size == 1 or not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        save_weights(model, output, {PROVENANCE_KEY: json.dumps(provenance)})
        output.with_name(f"{output.stem}.train.json").write_text(json.dumps(
            {"provenance": provenance, "report": report.to_json()}, indent=2, default=str) + "\n")
    return FinetuneResult(output, report, provenance)


def quantization_aware_finetune(
    method: str,
    *,
    scheme: str,
    target: str,
    task: str | None = None,
    variant: str | None = None,
    data: str | Path | None = None,
    steps: int = 1000,
    weights: str | Path | None = None,
    output: str | Path = "artifacts",
    crop: int | None = None,
    lr: float | None = None,
    backend: str | None = None,
    seed: int = 0,
):
    """Quantization-aware fine-tuning for one target: what ``edgeir finetune --qat SCHEME`` runs.

    The program is quantized by the target's engine for ``scheme`` (PT2E for ExecuTorch and Core ML,
    NNCF for ONNX), calibrated on ``data`` and trained ``steps`` steps in its fake-quant form with the
    method's objective; the result is the exported bundle, the same one ``edgeir export --quant SCHEME
    --qat-steps STEPS --calibration DATA`` writes. A fake-quant graph only exists for its program's
    shape, so ``crop`` is the program's side (default: the method's program size).

    Returns:
        The :class:`edgeir.Bundle`.

    Raises:
        UsageError: for unknown names, a scheme without quantization-aware training, or bad settings.
        StageError: when an export stage fails.
    """
    from edgeir.pipeline.export import export

    if steps <= 0:
        from edgeir.errors import UsageError

        raise UsageError(f"--steps must be positive for quantization-aware fine-tuning; got {steps}")
    return export(method, target, variant=variant, task=task, weights=weights, output=output, quant=scheme,
                  backend=backend, input_size=(crop, crop) if crop else None, seed=seed, qat_steps=steps,
                  calibration=data, qat_lr=lr)
