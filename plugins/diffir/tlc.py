"""DiffIR's Test-time Local Converter form (TLC, Chu et al., ECCV 2022), for ``edgeir export --tlc``.

DiffIR declares two global operations; TLC converts one of them and keeps the other global, on purpose:

* **DMTA's transposed attention** (every DIRformer block) becomes overlapping-window attention:
  the IPR modulation, ``qkv`` and its depthwise conv run on the full map as before, the attention
  core (:class:`~.model.TransposedAttention`) runs on each overlapping window of the TLC kernel
  (laid as the official ``LocalAttention.grids``), the outputs are averaged where windows overlap,
  and ``project_out`` runs on the full map: exactly the Restormer-Local conversion.
* **CPEN's pooling stays global.** It produces the IPR, one 256-float vector that modulates every
  DIRformer block (``Linear(ipr) -> per-channel scale and shift``). DiffIR is designed around that
  vector being a summary of the whole image (the diffusion runs on it, the prior / restore split
  gives one IPR per photo to all its tiles), and a local pool would turn it into a per-pixel map
  that the denoising MLP and DIRformer's modulation do not accept. So ``prior`` is unchanged, and
  the local model differs from the global one only inside ``restore``.

The parameters and their names are unchanged, so every DiffIR checkpoint loads into the local model.
The window sizes come from :func:`~edgeir.plugins.tlc.convert.localize`'s calibration forward on
the ``meta`` device, which runs ``DiffIR.forward(image)`` (the noise x_T defaults to zeros there).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeir.plugins._layers.attention import windowed_qkv_attention
from edgeir.plugins.tlc.convert import localize, swap_class
from edgeir.recipe import TLCOptions

from .model import TransposedAttention

__all__ = ["LocalTransposedAttention", "RULES", "to_local"]


class LocalTransposedAttention(TransposedAttention):
    """:class:`~.model.TransposedAttention` on overlapping ``kernel`` windows, averaged over overlaps."""

    kernel: tuple[int, int]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        return windowed_qkv_attention(torch.cat([q, k, v], dim=1), self.num_heads, temperature, self.kernel)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, kernel={self.kernel}"


#: Only the attention is converted; CPEN's ``GlobalAvgPool`` is deliberately absent (see the module doc).
RULES = {
    TransposedAttention: lambda m, k: swap_class(m, LocalTransposedAttention, kernel=tuple(k)),
}


def to_local(model: nn.Module, options: TLCOptions | None = None, in_channels: int | None = None):
    """DiffIR-Local of ``model`` and the manifest record (see :func:`~edgeir.plugins.tlc.convert.localize`).

    ``in_channels`` defaults to the model's (4 for inpainting: image + mask).
    """
    channels = in_channels if in_channels is not None else model.config.in_channels
    return localize(model, options or TLCOptions(), RULES, channels)
