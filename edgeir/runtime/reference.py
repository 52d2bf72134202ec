"""The host-side reference runner: an eager float32 model on the best local device (CUDA, MPS, else CPU)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def best_device() -> torch.device:
    """CUDA when present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
        """The module on a photo of any size, tile by tile as artifacts run (see :mod:`edgeir.runtime.tiling`).

        Returns:
            (H*scale)x(W*scale)xC float32 image.
        """
        from edgeir.runtime.tiling import restore_tiled

        return restore_tiled(image_hwc, lambda batch: self.run([batch])[0], tile, overlap, multiple, scale,
                             progress=progress)
