"""FlexIR's training objective: progressive self-distillation (Alg. 1, Eq. 2-5).

- Pointer schedule S: over the first half of the run the pointer d moves from 1 to N in equal
  phases, then all N exits train (:func:`pointer_schedule` says why); exits 1..d train at each step.
- Teacher: a frozen copy of the full model as it is when the objective is made (the paper loads
  it from SwinIR weights: build the model, load the SwinIR checkpoint, then make the objective),
  or the ``teacher`` given. Its last-group feature F_t is the distillation target of every exit.
  Its weights are part of the objective's state, so a resumed run distils from the same teacher,
  not from the half-trained student it was rebuilt from.
- Charbonnier loss (Eq. 2, eps 1e-3) between each exit's output and the clean image.
- Channel-wise scoring distillation (Eq. 3-4): phi = sigmoid(MLP(avgpool F) + MLP(maxpool F)) with
  one MLP shared by both pools (and by all exits); L_CA = mean |phi * F_j - F_t| / mean |F_t|.
  Eq. 4 has no denominator; it is here so that alpha weighs the two terms as the paper means
  whatever the features' scale. Without it, L_CA of SwinIR-sized features (mean |F_t| 4-12 for
  ``mobile``) was 3.6-10.5 against a Charbonnier term of 0.03: at alpha = 0.1 the distillation
  carried 97% of the loss, and 300 more steps of it lowered every exit's PSNR (commit e54ba09).
- Total (Eq. 5): sum_j j * (alpha L_CA_j + (1 - alpha) L_c_j) / sum_j j with alpha = 0.1.

A model without staged features (a quantization-prepared graph of one exit) gets the
Charbonnier term on its output only, and the logs say so.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

ALPHA = 0.1
EPS = 1e-3


def charbonnier(output: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Eq. 2, averaged over pixels."""
    return torch.sqrt((output - target) ** 2 + eps * eps).mean()


#: Share of the run over which the pointer moves from exit 1 to exit N; all N exits train for the rest.
ACTIVATION_SHARE = 0.5


def pointer_schedule(step: int, total_steps: int, groups: int, share: float = ACTIVATION_SHARE) -> int:
    """Exits active at ``step`` (Alg. 1's schedule S): the pointer steps from 1 to N in equal phases over
    the first ``share`` of the run, and every exit trains for the rest.

    Alg. 1 leaves S open. With equal phases over the whole run (``share=1``) the deepest exit trains
    only in the last 1/N, at the bottom of the cosine learning-rate schedule, after the earlier phases
    moved the groups it reads: in a 200-step CPU fine-tune of ``mobile`` that left exit 4 at 26.0 dB
    below exits 1-3 (27.9-28.3 dB) and below where it started (28.7 dB).
    """
    if total_steps <= 0:
        return groups
    if groups == 1:
        return 1
    phase = max(1, round(total_steps * share)) / groups
    return max(1, min(groups, 1 + int(step / phase)))


class ChannelScorer(nn.Module):
    """Eq. 3: phi = sigmoid(Theta(AP(F)) + Theta(MP(F))), Theta a shared two-layer MLP."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(feature.mean(dim=(2, 3)))
        peak = self.mlp(feature.amax(dim=(2, 3)))
        return torch.sigmoid(avg + peak)[:, :, None, None]


class ProgressiveSelfDistillation(nn.Module):
    """``obj(degraded, clean, step, total_steps) -> (loss, logs)`` for a FlexIR model (Alg. 1)."""

    def __init__(self, model: nn.Module, alpha: float = ALPHA, eps: float = EPS,
                 teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.alpha, self.eps = alpha, eps
        self.staged = hasattr(model, "forward_all")
        if self.staged:
            teacher = copy.deepcopy(teacher if teacher is not None else model).eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            # A plain attribute, not a submodule: the teacher stays out of parameters() and train().
            self.__dict__["teacher"] = teacher
            self.scorer = ChannelScorer(model.config.dim)

    def to(self, *args, **kwargs):  # the teacher is not a submodule, so move it by hand
        if self.staged:
            self.teacher.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        """The teacher's weights, saved with the objective's state (it is not a submodule)."""
        if not self.staged:
            return {}
        return {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.staged and state:
            self.teacher.load_state_dict(state, strict=True)

    def forward(self, degraded: torch.Tensor, clean: torch.Tensor, step: int,
                total_steps: int) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.staged:
            loss = charbonnier(self.model(degraded), clean, self.eps)
            return loss, {"charbonnier": float(loss.detach()), "note_no_distillation": 1.0}
        groups = self.model.config.groups
        d = pointer_schedule(step, total_steps, groups)
        outputs, features = self.model.forward_all(degraded, d)
        with torch.no_grad():
            teacher_features, _ = self.teacher.forward_features(degraded, groups)
            target = teacher_features[-1]
            scale = target.abs().mean().clamp_min(1e-6)
        total, weights, logs = degraded.new_zeros(()), 0, {"pointer": float(d)}
        for j, (out, feature) in enumerate(zip(outputs, features, strict=True), start=1):
            l_c = charbonnier(out, clean, self.eps)
            l_ca = (self.scorer(feature) * feature - target).abs().mean() / scale
            total = total + j * (self.alpha * l_ca + (1 - self.alpha) * l_c)
            weights += j
            logs[f"charbonnier_{j}"] = float(l_c.detach())
            logs[f"distill_{j}"] = float(l_ca.detach())
        loss = total / weights
        logs["loss"] = float(loss.detach())
        return loss, logs
