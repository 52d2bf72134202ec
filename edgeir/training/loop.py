"""One training loop for plain fine-tuning and quantization-aware training (QAT).

:func:`fine_tune` trains any ``nn.Module`` (an eager model, or a PT2E-prepared GraphModule for
QAT) with a method's objective (``MethodSpec.objective``; edgeir's Charbonnier loss when a method
declares none): AdamW, linear warm-up then cosine decay, gradient clipping, a progress bar with
loss and throughput, periodic PSNR on the evaluation split, checkpoints and exact resume.

Devices and processes: CUDA when present (else CPU). Under ``torchrun`` (``WORLD_SIZE`` > 1) each
process trains on different crops and gradients are averaged with ``all_reduce`` after every
backward pass (NCCL on CUDA, gloo on CPU). Averaging gradients directly, rather than wrapping the
model in ``DistributedDataParallel``, works for any objective (one that calls the model several
times, or holds a teacher) and for GraphModules; rank 0 alone evaluates, saves and shows progress.

Files: ``output`` is the trained model's state dict as safetensors (what ``edgeir export --weights``
loads); ``checkpoint`` is the full training state (model, objective, optimiser, step, history),
written with ``torch.save`` and read back with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeir.errors import CheckpointError, UsageError
from edgeir.evaluation.accuracy import EvalResult, evaluate, set_training

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "edgeir-train-state-1"


class CharbonnierObjective(nn.Module):
    """edgeir's default objective: Charbonnier loss ``mean(sqrt((model(x) - y)^2 + eps^2))``.

    A smooth L1 that most restoration papers train with; used when a method declares no objective.
    """

    def __init__(self, model: nn.Module, eps: float = 1e-3) -> None:
        super().__init__()
        self.model = model
        self.eps = eps

    def forward(self, degraded: torch.Tensor, clean: torch.Tensor, step: int, total_steps: int):
        out = self.model(degraded)
        if isinstance(out, (tuple, list)):
            out = out[0]
        loss = torch.sqrt((out - clean) ** 2 + self.eps**2).mean()
        return loss, {"charbonnier": float(loss.detach())}


def make_objective(spec: Any, model: nn.Module) -> nn.Module:
    """The method's objective for ``model`` (``spec.objective``), or :class:`CharbonnierObjective`."""
    factory = getattr(spec, "objective", None)
    return factory(model) if factory is not None else CharbonnierObjective(model)


@dataclass
class TrainReport:
    """What a run did.

    Args:
        steps: Steps completed (including those before a resume).
        start_step: Step the run started from (0, or the resumed checkpoint's).
        losses: ``(step, loss)`` every ``log_every`` steps.
        evals: ``(step, psnr_db)`` of each evaluation.
        final_eval: The last evaluation (all exits, SSIM), or None.
        seconds: Wall time of this run.
        images_per_second: Training crops per second of this run (all processes).
        device: Where it trained.
        world_size: Number of processes.
        output: The weights file written, or None.
        checkpoint: The training-state file written, or None.
        skipped_files: ``(file, reason)`` for data files left out as unreadable.
    """

    steps: int
    start_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    final_eval: EvalResult | None = None
    seconds: float = 0.0
    images_per_second: float = 0.0
    device: str = "cpu"
    world_size: int = 1
    output: str | None = None
    checkpoint: str | None = None
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["final_eval"] = self.final_eval.to_json() if self.final_eval else None
        return data


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.01) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup`` steps, then cosine to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _distributed(device: torch.device | None) -> _Dist:
    """Join the process group that ``torchrun`` describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not torch.distributed.is_initialized():
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _device(device: str | torch.device | None, dist: _Dist) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _parameters(model: nn.Module, objective: nn.Module) -> list[nn.Parameter]:
    seen: set[int] = set()
    params = []
    for p in list(model.parameters()) + list(objective.parameters()):
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    if not params:
        raise UsageError("the model has no trainable parameters")
    return params


def _optimizer(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay = [p for p in params if p.ndim > 1]
    plain = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.99))


def _average_gradients(params: list[nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict to a ``.safetensors`` file atomically (what ``--weights`` loads)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise UsageError(f"weights file {path} must end in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.partial")
    try:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    return value


def save_training_state(path: str | Path, *, model: nn.Module, objective: nn.Module,
                        optimizer: torch.optim.Optimizer, step: int, total_steps: int,
                        report: TrainReport) -> Path:
    """Write everything a resume needs; plain tensors and containers only (``weights_only`` loads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "total_steps": total_steps,
        "model": _on_cpu(model.state_dict()),
        "objective": _on_cpu(objective.state_dict()),  # may hold extra state: dicts of tensors
        "optimizer": optimizer.state_dict(),
        "losses": [list(x) for x in report.losses],
        "evals": [list(x) for x in report.evals],
    }
    tmp = path.with_name(f".{path.name}.partial")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training-state file written by :func:`save_training_state` (``weights_only=True``).

    Raises:
        CheckpointError: if it is missing, unsafe or not an edgeir training state.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read training state {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an edgeir training state (format {CHECKPOINT_FORMAT})")
    return state


def _objective_train(objective: nn.Module, model: nn.Module) -> None:
    """Training mode for the objective's own modules; a GraphModule inside it refuses ``train()``."""
    try:
        objective.train()
    except NotImplementedError:
        inside = {id(m) for m in model.modules()}
        for module in objective.modules():
            if id(module) not in inside:
                module.training = True


def _batches(data: Iterable, start: int):
    if hasattr(data, "batches"):
        return data.batches(start)
    iterator = iter(data)
    for _ in range(start):  # an arbitrary iterable cannot jump: skip what was consumed before
        next(iterator)
    return iterator


def fine_tune(
    model: nn.Module,
    objective: nn.Module | None,
    data: Iterable,
    *,
    steps: int,
    lr: float = 2e-4,
    weight_decay: float = 1e-4,
    warmup: int | None = None,
    grad_clip: float | None = 1.0,
    eval_pairs: list | None = None,
    eval_every: int | None = None,
    log_every: int = 10,
    output: str | Path | None = None,
    metadata: dict[str, str] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: str | Path | bool = False,
    device: str | torch.device | None = None,
    set_mode: Callable[[nn.Module, bool], None] | None = None,
    progress_desc: str = "fine-tune",
) -> TrainReport:
    """Train ``model`` for ``steps`` steps on ``data`` with ``objective`` and report what happened.

    Args:
        model: Any ``nn.Module``: an eager model or a PT2E-prepared GraphModule (QAT). Trained in place.
        objective: ``obj(degraded, clean, step, total_steps) -> (loss, logs)`` holding ``model``
            (see ``MethodSpec.objective``); None = :class:`CharbonnierObjective`.
        data: :class:`edgeir.data.datasets.TrainingPairs` (exact resume, per-rank crops) or any iterable of
            ``(degraded, clean)`` tensor batches.
        steps: Total optimiser steps (a resumed run continues up to this number).
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW weight decay of weight matrices and kernels (not of biases and norms).
        warmup: Linear warm-up steps (default: 5% of ``steps``, at most 500).
        grad_clip: Max global gradient norm; None disables clipping.
        eval_pairs: :class:`edgeir.data.datasets.EvalPair` items for periodic PSNR (None: no evaluation).
        eval_every: Steps between evaluations (default: at the end only).
        log_every: Steps between loss records.
        output: ``.safetensors`` file for the final weights.
        metadata: Strings stored in the weights file's header (provenance).
        checkpoint: Training-state file written every ``checkpoint_every`` steps and at the end.
        checkpoint_every: Steps between training-state saves (default: at the end only).
        resume: Continue from a training-state file (True: from ``checkpoint``).
        device: Torch device (default CUDA when present, per local rank; else CPU).
        set_mode: ``(model, training)`` switch; default ``model.train()`` with torchao's helpers
            for PT2E GraphModules.
        progress_desc: Label of the progress bar.

    Raises:
        UsageError: for bad settings (no steps, nothing trainable, a non-finite loss).
        CheckpointError: if the resume state does not fit.
    """
    from edgeir.progress import progress_bar

    if steps <= 0:
        raise UsageError(f"steps must be positive; got {steps}")
    dist = _distributed(None if device is None else torch.device(device))
    device = _device(device, dist)
    if device.type == "cuda" and dist.world > 1:
        torch.cuda.set_device(device)  # NCCL binds each rank's communicator to its current device
    objective = objective if objective is not None else CharbonnierObjective(model)
    if dist.rank and hasattr(data, "rank") and hasattr(data, "images"):
        from edgeir.data.datasets import TrainingPairs

        if isinstance(data, TrainingPairs):
            data = TrainingPairs(data.task, source=data.images, crop=data.crop, batch=data.batch_size,
                                 seed=data.seed, in_channels=data.in_channels, scale=data.scale, rank=dist.rank)
    model.to(device)
    objective.to(device)
    params = _parameters(model, objective)
    if dist.world > 1:
        import torch.distributed as tdist

        with torch.no_grad():
            for p in params:
                tdist.broadcast(p.data, src=0)
    optimizer = _optimizer(params, lr, weight_decay)
    warmup = min(500, max(1, steps // 20)) if warmup is None else warmup
    report = TrainReport(steps=0, start_step=0, device=str(device), world_size=dist.world,
                         skipped_files=list(getattr(data, "skipped", ())))
    start = 0
    if resume:
        source = checkpoint if resume is True else resume
        if source is None:
            raise UsageError("resume=True needs a checkpoint path")
        state = load_training_state(source)
        model.load_state_dict(state["model"], strict=True)
        objective.load_state_dict(state["objective"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        report.losses = [tuple(x) for x in state["losses"]]
        report.evals = [tuple(x) for x in state["evals"]]
        if start >= steps:
            log.warning("training state %s is already at step %d of %d; nothing to train", source, start, steps)
    report.start_step = start
    mode = set_mode or set_training
    _objective_train(objective, model)
    mode(model, True)
    batch_iter = _batches(data, start)
    began = time.perf_counter()
    images = 0
    bar_context = progress_bar(total=steps, desc=progress_desc, initial=start) if dist.main else nullcontext()
    with bar_context as bar:
        for step in range(start, steps):
            degraded, clean = next(batch_iter)
            degraded, clean = degraded.to(device, non_blocking=True), clean.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, steps, warmup)
            loss, logs = objective(degraded, clean, step, steps)
            if not torch.isfinite(loss):
                raise UsageError(f"the loss became {float(loss)} at step {step}; lower --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if dist.world > 1:
                _average_gradients(params, dist.world)
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            images += degraded.shape[0] * dist.world
            done = step + 1
            if done % log_every == 0 or done == steps:
                report.losses.append((done, float(loss.detach())))
            if dist.main:
                rate = images / max(1e-9, time.perf_counter() - began)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", img_s=f"{rate:.1f}", refresh=False)
                bar.update(1)
                if eval_pairs and eval_every and done % eval_every == 0 and done != steps:
                    result = evaluate(model, eval_pairs, device=device, with_ssim=False, set_mode=mode)
                    report.evals.append((done, round(result.psnr_db, 3)))
                    log.info("step %d: eval PSNR %s dB", done,
                             " / ".join(f"{e['psnr_db']:.3f}" for e in result.exits.values()))
                if checkpoint and checkpoint_every and done % checkpoint_every == 0 and done != steps:
                    report.steps = done
                    save_training_state(checkpoint, model=model, objective=objective, optimizer=optimizer,
                                        step=done, total_steps=steps, report=report)
    report.seconds = time.perf_counter() - began
    report.images_per_second = images / max(1e-9, report.seconds)
    report.steps = max(start, steps)
    if dist.main:
        if eval_pairs:
            report.final_eval = evaluate(model, eval_pairs, device=device, set_mode=mode)
            report.evals.append((report.steps, round(report.final_eval.psnr_db, 3)))
        if checkpoint:
            report.checkpoint = str(save_training_state(checkpoint, model=model, objective=objective,
                                                        optimizer=optimizer, step=report.steps, total_steps=steps,
                                                        report=report))
        if output:
            meta = dict(metadata or {})
            meta.setdefault("steps", str(report.steps))
            if report.final_eval:
                meta.setdefault("eval_psnr_db", f"{report.final_eval.psnr_db:.3f}")
            report.output = str(save_weights(model, output, meta))
    mode(model, False)
    return report
