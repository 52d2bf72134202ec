"""The host-side reference: the eager float32 model on the best local device."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeir.checkpoint import state_dict_sha256
from edgeir.discovery import methods

log = logging.getLogger(__name__)


def best_device() -> torch.device:
    """CUDA when present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from; recorded in the manifest so verify can rebuild them.

    Args:
        source: "random-init", "checkpoint", or "edgeir-default" (weights edgeir ships, see
            :mod:`edgeir.default_weights`).
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
    there are some (:mod:`edgeir.default_weights`), else a seeded random initialisation;
    ``weights="random"`` asks for the random initialisation explicitly.

    Raises:
        UnknownNameError: for an unknown method, variant or task.
        CheckpointError: if the weights do not load.
    """
    from edgeir.default_weights import SOURCE, is_random_request, shipped_weights

    spec = methods().get(method)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build_model(variant, task)
    shipped = shipped_weights(spec.weights_of or method, variant, task) if weights is None else None
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


class ReferenceRunner:
    """Runs an eager module in float32 on the best local device (or the one given)."""

    def __init__(self, module: nn.Module, device: torch.device | None = None) -> None:
        self.device = device or best_device()
        self.module = module.to(self.device).float().eval()

    @torch.no_grad()
    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs of the module for float32 NCHW arrays, as float32 arrays."""
        tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device) for x in inputs]
        outputs = self.module(*tensors)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return [o.detach().float().cpu().numpy() for o in outputs]

    def run_tiled(self, image_hwc: np.ndarray, tile: tuple[int, int] | int, overlap: int, multiple: int = 1,
                  scale: int = 1, progress=None) -> np.ndarray:
        """The module on a photo of any size, tile by tile as artifacts run (see :mod:`edgeir.tiling`).

        Returns:
            (H*scale)x(W*scale)xC float32 image.
        """
        from edgeir.tiling import restore_tiled

        return restore_tiled(image_hwc, lambda batch: self.run([batch])[0], tile, overlap, multiple, scale,
                             progress=progress)
