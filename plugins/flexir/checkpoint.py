"""Reading official SwinIR checkpoints into FlexIR (github.com/JingyunLiang/SwinIR, release v0.0).

Released files are ``{"params": sd}`` (classical/lightweight SR, denoise, JPEG CAR),
``{"params_ema": sd}`` (real-SR GAN) or bare state dicts (KAIR training), sometimes with a
``module.`` prefix. FlexIR's backbone is SwinIR's, renamed where our modules differ:

- ``patch_embed.norm.*`` -> ``patch_norm.*``;
- ``layers.i.residual_group.blocks.j.*`` -> ``layers.i.blocks.j.*``;
- the one official tail (``norm``, ``conv_after_body``, ``conv_before_upsample``, ``upsample``,
  ``conv_last``) is copied into every exit head ``exits.k.*``, so every exit gives a sensible
  restoration before any fine-tuning (the paper initialises FlexIR from SwinIR the same way);
- ``attn_mask`` and ``relative_position_index`` are buffers that FlexIR recomputes per input size;
  they are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from edgeir.plugins._layers.checkpoint import require_tensors, strip_prefixes, unwrap

__all__ = ["official_state_dict"]

_STRIPPABLE_PREFIXES = ("module.", "netG.")
_RECOMPUTED_BUFFERS = ("attn_mask", "relative_position_index")
_TAIL = ("norm.", "conv_after_body.", "conv_before_upsample.", "upsample.", "conv_last.")
_GROUP = re.compile(r"^layers\.(\d+)\.")


def official_state_dict(raw: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """FlexIR state-dict keys from an official SwinIR checkpoint or a FlexIR state dict.

    A FlexIR state dict (it has ``exits.*`` keys) passes through unchanged after unwrapping. Keys
    that map to nothing (e.g. a real-SR ``conv_up1``) are kept, so the strict loader names them.

    Args:
        raw: What ``torch.load`` returned.

    Raises:
        ValueError: if no tensors are found or an entry is not a tensor.
    """
    sd = require_tensors(strip_prefixes(unwrap(raw)[1], _STRIPPABLE_PREFIXES), "SwinIR or FlexIR")
    if any(k.startswith("exits.") for k in sd):
        return sd
    groups = 1 + max((int(m.group(1)) for k in sd if (m := _GROUP.match(k))), default=-1)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.rsplit(".", 1)[-1] in _RECOMPUTED_BUFFERS:
            continue
        if key.startswith(_TAIL):
            for k in range(groups):
                out[f"exits.{k}.{key}"] = value.clone()
            continue
        key = key.replace("patch_embed.norm.", "patch_norm.", 1) if key.startswith("patch_embed.norm.") else key
        key = key.replace(".residual_group.blocks.", ".blocks.", 1)
        out[key] = value
    return out
