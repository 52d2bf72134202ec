"""Reading official DiffIR checkpoints (github.com/Zj-BinXia/DiffIR) into :class:`~.model.DiffIR` keys.

Layouts:

* BasicSR projects (deblur, SRGAN, RealSR): ``{"params": sd, "params_ema": sd}``; the EMA weights
  are the ones the official tests evaluate, so ``params_ema`` is preferred, then ``params`` (the
  shared precedence of :mod:`edgeir.plugins._layers.checkpoint`).
* Inpainting (LaMa fork): a Lightning ``.ckpt`` whose ``state_dict`` holds ``generator.<DiffIRS2
  keys>`` next to the stage-1 teacher, the discriminator and loss modules; only ``generator.*``
  is the network.
* A bare state dict, optionally with a DataParallel ``module.`` prefix.

``DiffIRS2`` registers CPEN and the denoising MLP twice (``condition.*`` / ``diffusion.condition.*``
and ``denoise.*`` / ``diffusion.model.*``) and the DDPM registers 12 schedule buffers
(``diffusion.betas`` ...). The duplicates are folded into one copy after checking that they are
equal, and the schedule buffers are checked against the schedule the model unrolls, then dropped.
Anything else that does not fit is left in place, so strict loading names it (the official test
configs load with ``strict_load_g: False`` and would hide it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from edgeir.plugins._layers.checkpoint import require_tensors, strip_prefixes, unwrap

__all__ = ["official_state_dict", "SCHEDULE_BUFFERS"]

_LIGHTNING_PREFIX = "generator."
#: Copies registered by the official DDPM wrapper: (duplicate prefix, canonical prefix).
_DUPLICATES = (("diffusion.model.", "denoise."), ("diffusion.condition.", "condition."))
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
)
#: The schedule every release uses (and the model unrolls): T = 4, betas sqrt-linear 0.1 -> 0.99.
_TIMESTEPS, _LINEAR_START, _LINEAR_END = 4, 0.1, 0.99


def _unwrap(raw: Mapping[str, object]) -> dict[str, object]:
    wrapper, inner = unwrap(raw)
    if wrapper != "state_dict":
        return inner
    generator = {k[len(_LIGHTNING_PREFIX):]: v for k, v in inner.items() if k.startswith(_LIGHTNING_PREFIX)}
    if not generator:
        raise ValueError("a Lightning checkpoint without 'generator.*' entries (the DiffIRS2 network); "
                         f"prefixes found: {sorted({k.split('.')[0] for k in inner})[:8]}")
    return generator


def _check_schedule(sd: Mapping[str, torch.Tensor]) -> None:
    betas = sd.get("diffusion.betas")
    if betas is None:
        return
    expected = np.linspace(_LINEAR_START**0.5, _LINEAR_END**0.5, _TIMESTEPS, dtype=np.float64) ** 2
    got = betas.detach().double().cpu().numpy()
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-7):
        raise ValueError(f"diffusion.betas {np.round(got, 5).tolist()} differ from the schedule DiffIR unrolls "
                         f"(T={_TIMESTEPS}, {_LINEAR_START} -> {_LINEAR_END}: {np.round(expected, 5).tolist()})")


def official_state_dict(raw: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Plain :class:`~.model.DiffIR` keys from an official checkpoint or a state dict.

    Args:
        raw: What ``torch.load`` returned.

    Returns:
        A new dict; entries the model does not know are kept (strict loading reports them).

    Raises:
        ValueError: if no tensors are found, an entry is not a tensor, a duplicated sub-tree
            differs from its twin (the file is inconsistent), or the schedule buffers describe a
            schedule other than the one the model runs.
    """
    sd = require_tensors(strip_prefixes(_unwrap(raw)), "DiffIRS2")
    _check_schedule(sd)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("diffusion.") and key[len("diffusion."):] in SCHEDULE_BUFFERS:
            continue
        for duplicate, canonical in _DUPLICATES:
            if key.startswith(duplicate):
                twin = canonical + key[len(duplicate):]
                if twin in sd:
                    other = sd[twin]
                    if other.shape != value.shape or not torch.equal(other, value):
                        raise ValueError(f"'{key}' should be the same tensor as '{twin}' (the official model "
                                         "registers it twice) but differs: the checkpoint is inconsistent")
                    break
                out[twin] = value
                break
        else:
            out[key] = value
    return out
