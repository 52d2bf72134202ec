"""Building a method's eager model with its weights: a checkpoint, the weights the plugin ships, or a seeded
random initialisation, and a record of which (:class:`WeightsInfo`, kept in the manifest)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeir.discovery import methods
from edgeir.weights.checkpoint import state_dict_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from; recorded in the manifest so verify can rebuild them.

    Args:
        source: "random-init", "checkpoint", or "edgeir-default" (weights edgeir ships, see
            :mod:`edgeir.weights.shipped`).
        state_sha256: sha256 of the loaded state dict (see ``state_dict_sha256``).
        path: Checkpoint path, for "checkpoint".
        file_sha256: sha256 of the checkpoint file, for "checkpoint".
        seed: Initialisation seed, for "random-init".
        provenance: How shipped weights were trained and their evaluation PSNR, for "edgeir-default".
    """

    source: str
    state_sha256: str
    path: str | None = None
    file_sha256: str | None = None
    seed: int | None = None
    provenance: dict[str, Any] | None = None

    @property
    def is_random(self) -> bool:
        return self.source == "random-init"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.is_random:
            data["note"] = "random initialisation: outputs are not restorations and accuracy figures are meaningless"
        return {k: v for k, v in data.items() if v is not None}


def build_model_with_weights(
    method: str,
    variant: str | None = None,
    task: str | None = None,
    weights: str | Path | None = None,
    seed: int = 0,
) -> tuple[nn.Module, WeightsInfo]:
    """Build a method's eager model in eval mode and load ``weights`` (or seed a random init).

    Without ``weights``, the weights edgeir ships for this (method, variant, task) are loaded when
    there are some (``MethodSpec.weights``), else a seeded random initialisation;
    ``weights="random"`` asks for the random initialisation explicitly.

    Raises:
        UnknownNameError: for an unknown method, variant or task.
        CheckpointError: if the weights do not load.
    """
    from edgeir.weights.shipped import SOURCE, is_random_request

    spec = methods().get(method)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build_model(variant, task)
    shipped = spec.shipped_weights(variant, task) if weights is None else None
    if is_random_request(weights):
        log.info("random initialisation (seed %d) requested for %s", seed, method)
        info = WeightsInfo("random-init", state_dict_sha256(model), seed=seed)
    elif shipped is not None:
        file_sha = spec.load_checkpoint(model, shipped.path)
        info = WeightsInfo(SOURCE, state_dict_sha256(model), path=str(shipped.path), file_sha256=file_sha,
                           provenance=shipped.provenance)
    elif weights is None:
        log.warning(
            "no weights given for %s: using random initialisation (seed %d); the artifact will not "
            "restore images. Pass --weights with an official or fine-tuned checkpoint.", method, seed)
        info = WeightsInfo("random-init", state_dict_sha256(model), seed=seed)
    else:
        file_sha = spec.load_checkpoint(model, weights)
        info = WeightsInfo("checkpoint", state_dict_sha256(model), path=str(Path(weights).resolve()),
                           file_sha256=file_sha)
    return model.eval(), info



def build_model(
    method: str,
    variant: str | None = None,
    task: str | None = None,
    weights: str | Path | None = None,
) -> nn.Module:
    """The eager (trainable) model of ``method``, in eval mode.

    Args:
        method: Registered method name.
        variant: Model variant (method default when None).
        task: Restoration task (method default when None).
        weights: Checkpoint to load strictly; None loads the plugin's shipped weights for this variant and
            task, else a seeded random initialisation (a warning is logged); ``"random"`` asks for it.

    Raises:
        UnknownNameError: for an unknown method, variant or task, listing the valid ones.
        CheckpointError: if the weights do not fit.
    """
    model, _ = build_model_with_weights(method, variant, task, weights)
    return model
