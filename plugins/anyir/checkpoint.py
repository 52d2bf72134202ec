"""Reading official AnyIR checkpoints (arXiv:2504.14249, github.com/Amazingren/AnyIR).

The release trains with PyTorch Lightning: a ``.ckpt`` is ``{"state_dict": {"net.<key>": ...},
"optimizer_states": ..., "lr_schedulers": ..., "hyper_parameters": ..., ...}`` where ``net`` is
the network inside the LightningModule. Other tools re-save it as a bare state dict, sometimes
with a DataParallel ``module.`` prefix or a BasicSR ``{"params"}``/``{"params_ema"}`` wrapper.
Everything here turns those into the plain keys of :class:`~.model.AnyIR`. The wrapper is found
with the shared precedence of :mod:`edgeir.plugins._layers.checkpoint` (``params_ema``, ``params``,
``state_dict``, ``model``): a release ``.ckpt`` holds only ``state_dict``, so it reads the same as
with AnyIR's former ``state_dict``-first order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from edgeir.plugins._layers.checkpoint import require_tensors, strip_prefixes, unwrap

from .model import AnyIRConfig, level_widths

__all__ = ["official_state_dict", "infer_config"]

#: Attribute name of the network inside the official LightningModule.
_LIGHTNING_NET = "net."
_STRIPPABLE_PREFIXES = ("module.", "net.")
_STAGES = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")


def official_state_dict(raw: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Plain ``AnyIR.state_dict()``-style keys from an official checkpoint or a state dict.

    Accepts the Lightning ``.ckpt`` dict, ``{"params": sd}`` / ``{"params_ema": sd}`` wrappers
    and bare state dicts, with or without ``net.`` / ``module.`` prefixes. In a Lightning
    state dict that also holds other members of the LightningModule (loss modules and the
    like), only the ``net.*`` entries are kept. Every network entry is returned, including keys
    AnyIR does not know: strict loading is left to the caller, which reports them.

    Args:
        raw: What ``torch.load`` returned.

    Returns:
        A new dict from plain parameter/buffer names to tensors.

    Raises:
        ValueError: If no tensors are found, or a network entry is not a tensor.
    """
    sd = unwrap(raw)[1]
    if any(k.startswith(_LIGHTNING_NET) for k in sd) and not all(k.startswith(_LIGHTNING_NET) for k in sd):
        sd = {k: v for k, v in sd.items() if k.startswith(_LIGHTNING_NET)}
    return require_tensors(strip_prefixes(sd, _STRIPPABLE_PREFIXES), "AnyIR")


def _stage_depth(keys: list[str], stage: str) -> int:
    pattern = re.compile(rf"^{stage}\.(\d+)\.")
    indices = [int(m.group(1)) for k in keys if (m := pattern.match(k))]
    return max(indices) + 1 if indices else 0


def _infer_ffn_expansion(sd: Mapping[str, torch.Tensor], dim: int) -> float:
    """The shortest decimal ``f`` with ``int(width * f)`` equal to every stored FFN hidden width.

    ``int()`` truncates, so a factor such as 2.66 is only known to lie in an interval; the
    shortest decimal inside it is what a person would have written in the config.
    """
    hidden = {}
    for stage, width in zip(_STAGES, level_widths(dim), strict=True):
        key = f"{stage}.0.ffn.project_out.weight"
        if key in sd:
            hidden[width] = int(sd[key].shape[1])
    low = max(h / width for width, h in hidden.items())
    high = min((h + 1) / width for width, h in hidden.items())
    for decimals in range(7):
        candidate = math.ceil(low * 10**decimals) / 10**decimals
        if candidate < high and all(int(width * candidate) == h for width, h in hidden.items()):
            return candidate
    raise ValueError(f"no single ffn_expansion_factor explains the FFN widths {hidden}")


def infer_config(sd: Mapping[str, object]) -> AnyIRConfig:
    """Rebuild the :class:`~.model.AnyIRConfig` a state dict was trained with.

    ``dim`` comes from ``patch_embed.proj.weight``; block counts from the largest
    ``<stage>.<i>`` index (the newest release is dim 28, blocks (3, 5, 5, 7); an older revision
    of the code defaulted to dim 32, blocks (4, 6, 6, 8)); heads from the attention
    temperatures; bias and LayerNorm kind from which optional entries exist.

    Args:
        sd: A state dict, raw or already passed through :func:`official_state_dict`.

    Raises:
        ValueError: If the entries needed to infer the configuration are missing.
    """
    tensors = official_state_dict(sd)
    keys = list(tensors)
    required = ("patch_embed.proj.weight", "output.weight", "encoder_level1.0.norm1.body.weight")
    missing = [k for k in required if k not in tensors]
    if missing:
        raise ValueError(f"not an AnyIR state dict: missing {missing}")
    dim, in_channels = tensors["patch_embed.proj.weight"].shape[:2]
    depths = [_stage_depth(keys, stage) for stage in _STAGES]
    if min(depths) < 1:
        raise ValueError(f"not an AnyIR state dict: a stage has no blocks (depths {depths})")
    heads = tuple(int(tensors[f"{stage}.0.attn.temperature"].shape[0]) for stage in _STAGES)
    return AnyIRConfig(
        in_channels=int(in_channels),
        out_channels=int(tensors["output.weight"].shape[0]),
        dim=int(dim),
        num_blocks=tuple(depths),
        num_refinement_blocks=_stage_depth(keys, "refinement"),
        heads=heads,
        ffn_expansion_factor=_infer_ffn_expansion(tensors, int(dim)),
        bias="encoder_level1.0.attn.qkv.bias" in tensors,
        layernorm="with_bias" if "encoder_level1.0.norm1.body.bias" in tensors else "bias_free",
    )
