"""Training FlexIR without SwinIR weights: a stand-in for the teacher, then progressive self-distillation.

Alg. 1 starts from a trained SwinIR: the teacher is the full model with SwinIR's weights, and every
exit head starts from SwinIR's tail. Where no official checkpoint is at hand (edgeir downloads
nothing), :func:`train_full_model` provides the stand-in: the full model (pointer N) trained with
the plain Charbonnier loss, then its head copied into every exit, as ``load_checkpoint`` does
with an official tail. Progressive self-distillation (``edgeir finetune flexir``) then starts from
those weights with that model as its teacher.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def copy_last_head(model: nn.Module) -> None:
    """Every exit head takes the weights of the last one (what an official SwinIR tail would give)."""
    last = model.exits[-1].state_dict()
    for head in model.exits[:-1]:
        head.load_state_dict(last)


def train_full_model(model: nn.Module, train, *, steps: int, lr: float, eval_pairs=None, device=None,
                     progress_desc: str = "FlexIR full model (teacher stand-in)") -> Any:
    """Train pointer N alone with Charbonnier, then copy its head into every exit; returns the TrainReport."""
    from edgeir.training.loop import CharbonnierObjective, fine_tune

    report = fine_tune(model, CharbonnierObjective(model), train, steps=steps, lr=lr, eval_pairs=eval_pairs,
                       device=device, progress_desc=progress_desc)
    copy_last_head(model)
    return report
