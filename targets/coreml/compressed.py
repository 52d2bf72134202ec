"""The weights a weight-compressed Core ML package computes with, mapped back to the converted module's tensors.

``int8-weights`` and ``w4`` packages store their large weights as ``constexpr_affine_dequantize`` (int8 data,
per-channel scale) and ``constexpr_lut_to_dense`` (4-bit indices into a 16-entry palette) ops. ``verify``
compares such an artifact with the module that was converted (the eager model after the export's rewrites)
rebuilt with *these* weights, decoded from the saved package by edgeir-mil's own kernels, so the check
isolates the conversion and the float16 arithmetic from the compression, whose cost is reported separately.

Mapping a compressed weight to the parameter or buffer (by state-dict name) it came from:

1. **by name**: coremltools keeps ``torch.export``'s placeholder name in the const's name: parameter
   ``encoder.0.W_exp.weight`` is placeholder ``p_encoder_0_w_exp_weight`` (buffers ``b_``), and the compressed
   const is that name plus suffixes (``_to_fp16_palettized``, ``_to_fp16_quantized``). The longest state-dict
   key whose placeholder name is the const's name up to such a ``_`` suffix wins; it must have the same shape.
2. **by value**, for a const no name claims (a weight a rewrite renamed, a name shared by two keys): among
   the same-shape tensors not already claimed, the one the decoded weight is closest to (highest SNR). It
   must be clearly the closest: at least :data:`MIN_WEIGHT_SNR_DB` and :data:`UNIQUE_MARGIN_DB` above the
   second.

3. **as a folded scale**: coremltools' ``fuse_conv_scale`` turns ``conv(x, W) * s`` (a constant ``s``, one per
   output channel) into ``conv(x, W * s)``, a const named after the ``mul`` (NAFNet's ``conv5(x) * gamma``:
   ``mul_22_weight_0_to_fp16_palettized``). The pair ``(W, s)`` of reference tensors whose product is clearly
   closest is taken (over a plain value match only when :data:`UNIQUE_MARGIN_DB` closer), and ``W`` becomes
   ``D / s`` (``D`` the decoded weight), so the eager model, which multiplies by ``s`` again, computes with
   ``D``. An all-zero ``D`` folded from an all-zero scale (NAFNet's initial ``gamma``) contributes nothing in
   either model and substitutes nothing.

Every compressed weight must map to exactly one tensor, and every mapped weight must be a compression of
that tensor (SNR >= :data:`MIN_WEIGHT_SNR_DB`: a 4-bit palette keeps about 20 dB, int8 about 40 dB). Otherwise
the package holds weights that are not the model's and :class:`WeightMappingError` says which.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeir.errors import CheckFailed

#: A compressed weight further than this from the float tensor it maps to is not its compression.
MIN_WEIGHT_SNR_DB = 10.0
#: By value, the best same-shape candidate must beat the second by this much.
UNIQUE_MARGIN_DB = 6.0
#: How a compressed weight was matched, in the order tried.
MATCHES = ("name", "value", "folded-scale", "zero-scale")
#: ``torch.export`` placeholder prefixes: parameters, buffers.
PREFIXES = ("p_", "b_")


class WeightMappingError(CheckFailed):
    """A compressed weight of the package maps to no tensor of the reference, to several, or to one it is not
    a compression of."""


@dataclass
class MappedWeights:
    """The decoded weights by state-dict key, and one record per compressed const (for ``verify.json``)."""

    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts and the worst weight SNR, for the report."""
        by = {how: sum(r["matched_by"] == how for r in self.records) for how in MATCHES}
        scored = [r for r in self.records if r["weight_snr_db"] is not None]
        worst = min(scored, key=lambda r: r["weight_snr_db"]) if scored else None
        return {"compressed_weights": len(self.records), **{f"matched_by_{how.replace('-', '_')}": count
                                                            for how, count in by.items() if count or how == "name"},
                **({"min_weight_snr_db": worst["weight_snr_db"], "min_weight_snr_key": worst["key"]} if worst else {})}


def placeholder_name(key: str, prefix: str) -> str:
    """``torch.export``'s placeholder name for state-dict ``key``: lower case, dots (anything not a word
    character) become ``_``."""
    return prefix + re.sub(r"\W", "_", key).lower()


def weight_snr_db(decoded: torch.Tensor, reference: torch.Tensor) -> float:
    """``10 log10(sum(ref^2) / sum((decoded - ref)^2))`` in float64; ``inf`` when equal."""
    ref = reference.detach().double().cpu()
    error = float(((decoded.detach().double().cpu() - ref) ** 2).sum())
    signal = float((ref ** 2).sum())
    if error == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / error)


def map_weights(decoded: Mapping[str, tuple[str, torch.Tensor]], state: Mapping[str, torch.Tensor]) -> MappedWeights:
    """Map every decoded compressed const (name -> ``(op type, tensor)``) to one tensor of ``state``.

    Returns the tensors to substitute, keyed like ``state`` (in the state's dtype), with one record per const.

    Raises:
        WeightMappingError: if a const maps to no tensor, two consts map to one, or a mapped const is not a
            compression of its tensor.
    """
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    names = _names(tensors)
    mapped = MappedWeights()
    claimed: dict[str, str] = {}
    pending = []
    for const, (op_type, value) in decoded.items():
        key = _by_name(const, names)
        if key is None or tuple(tensors[key].shape) != tuple(value.shape):
            pending.append(const)
            continue
        _claim(claimed, key, const)
        mapped.records.append(_record(const, op_type, key, "name", value, tensors[key]))
        mapped.weights[key] = value
    for const in pending:  # after every name has claimed its tensor
        op_type, value = decoded[const]
        key, snr, failure = _by_value(const, value, tensors, claimed)
        folded = _by_folded_scale(value, tensors, claimed)
        # a weight times a scale can also be close to the weight alone: the fold wins when clearly closer
        if key is not None and (folded is None or folded[2] < snr + UNIQUE_MARGIN_DB):
            _claim(claimed, key, const)
            mapped.records.append(_record(const, op_type, key, "value", value, tensors[key]))
            mapped.weights[key] = value
            continue
        if folded is None:
            raise WeightMappingError(failure)
        key, scale, _ = folded
        record = {"const": const, "op": op_type, "scale": scale}
        if key is None:  # all zero, folded from an all-zero scale: no tensor to substitute
            mapped.records.append({**record, "scale": None, "key": None, "matched_by": "zero-scale",
                                   "weight_snr_db": None})
            continue
        _claim(claimed, key, const)
        channels = _channel_scale(tensors[scale], value)
        mapped.records.append(_record(const, op_type, key, "folded-scale", value, tensors[key] * channels) | record)
        # the eager model multiplies the conv's output by the scale again: conv(x, D / s) * s == conv(x, D)
        mapped.weights[key] = torch.where(channels != 0, value.double() / channels.double(),
                                          tensors[key].detach().cpu().double())
    for record in mapped.records:
        if record["weight_snr_db"] is not None and record["weight_snr_db"] < MIN_WEIGHT_SNR_DB:
            raise WeightMappingError(
                f"compressed weight `{record['const']}` of the package is not a compression of `{record['key']}` "
                f"(matched by {record['matched_by']}): {record['weight_snr_db']:.1f} dB against it "
                f"(< {MIN_WEIGHT_SNR_DB:.0f} dB); the package holds weights that are not the model's")
    mapped.weights = {key: value.detach().to(device="cpu", dtype=tensors[key].dtype)
                      for key, value in mapped.weights.items()}
    return mapped


def package_weights(package: Path, program: str, state: Mapping[str, torch.Tensor]) -> MappedWeights:
    """The compressed weights of ``program`` in the saved ``package`` (its function of that name, or the single
    function ``main``), decoded and mapped onto ``state``."""
    from edgeir.targets.coreml.mil import MILProgram

    mil = MILProgram(package, device="cpu")
    function = program if program in mil.functions else mil.functions[0]
    return map_weights(mil.decompressed_weights(function), state)


def _names(tensors: Mapping[str, torch.Tensor]) -> dict[str, str | None]:
    """Placeholder name -> key; None where two keys give the same name (left to the value match)."""
    names: dict[str, str | None] = {}
    for key in tensors:
        for prefix in PREFIXES:
            name = placeholder_name(key, prefix)
            names[name] = None if name in names and names[name] != key else key
    return names


def _by_name(const: str, names: Mapping[str, str | None]) -> str | None:
    """The key whose placeholder name is ``const`` or its longest ``_``-bounded prefix."""
    parts = const.lower().split("_")
    for end in range(len(parts), 0, -1):
        candidate = "_".join(parts[:end])
        if candidate in names:
            return names[candidate]  # None when ambiguous: no shorter name may claim it
    return None


def _by_value(const: str, value: torch.Tensor, tensors: Mapping[str, torch.Tensor],
              claimed: Mapping[str, str]) -> tuple[str | None, float, str]:
    """``(key, SNR, "")``: the unclaimed same-shape tensor clearly closest to ``value``; else ``(None, -inf, why)``."""
    candidates = sorted(((weight_snr_db(value, tensor), key) for key, tensor in tensors.items()
                         if key not in claimed and tuple(tensor.shape) == tuple(value.shape)), reverse=True)
    if not candidates or candidates[0][0] < MIN_WEIGHT_SNR_DB:
        closest = f"; the closest, `{candidates[0][1]}`, is at {candidates[0][0]:.1f} dB" if candidates else ""
        why = (f"compressed weight `{const}` {list(value.shape)} of the package maps to no tensor of the reference: "
               f"no name matches, no unclaimed tensor of that shape is within {MIN_WEIGHT_SNR_DB:.0f} dB{closest}, "
               "and it is no such tensor times a per-channel scale of the reference")
        return None, -math.inf, why
    if len(candidates) > 1 and candidates[1][0] > candidates[0][0] - UNIQUE_MARGIN_DB:
        raise WeightMappingError(
            f"compressed weight `{const}` {list(value.shape)} of the package matches several tensors of the "
            f"reference: `{candidates[0][1]}` ({candidates[0][0]:.1f} dB) and `{candidates[1][1]}` "
            f"({candidates[1][0]:.1f} dB)")
    return candidates[0][1], candidates[0][0], ""


def _by_folded_scale(value: torch.Tensor, tensors: Mapping[str, torch.Tensor],
                     claimed: Mapping[str, str]) -> tuple[str | None, str, float] | None:
    """``(weight key, scale key, SNR)`` where coremltools folded a scale of the model into a conv weight
    (``fuse_conv_scale``: ``conv(x, W) * s`` becomes ``conv(x, W * s)``, the const named after the ``mul``).

    ``s`` is a tensor of the reference with one entry per output channel (or one); the pair is the unclaimed
    same-shape ``W`` and ``s`` whose product is clearly closest to ``value``. An all-zero ``value`` folded
    from an all-zero scale gives ``(None, scale key, inf)``: the weight contributes nothing, in either model.
    None when no pair fits.
    """
    scales = [key for key, tensor in tensors.items() if tensor.numel() in (1, value.shape[0]) and value.dim() > 1]
    if not value.any():
        zero = [key for key in scales if not tensors[key].any()]
        return (None, zero[0], math.inf) if zero else None
    weights = [key for key, tensor in tensors.items()
               if key not in claimed and tuple(tensor.shape) == tuple(value.shape)]
    candidates = sorted(((weight_snr_db(value, tensors[w] * _channel_scale(tensors[s], value)), w, s)
                         for w in weights for s in scales if tensors[s].any()), reverse=True)
    if not candidates or candidates[0][0] < MIN_WEIGHT_SNR_DB:
        return None
    if len(candidates) > 1 and candidates[1][0] > candidates[0][0] - UNIQUE_MARGIN_DB:
        return None
    return candidates[0][1], candidates[0][2], candidates[0][0]


def _channel_scale(scale: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``scale`` shaped to multiply ``weight`` along its first (output-channel) axis."""
    return scale.detach().cpu().float().reshape(-1, *([1] * (weight.dim() - 1))).expand_as(weight)


def _claim(claimed: dict[str, str], key: str, const: str) -> None:
    if key in claimed:
        raise WeightMappingError(f"compressed weights `{claimed[key]}` and `{const}` of the package both map to "
                                 f"`{key}`")
    claimed[key] = const


def _record(const: str, op_type: str, key: str, how: str, value: torch.Tensor, tensor: torch.Tensor) -> dict[str, Any]:
    snr = weight_snr_db(value, tensor)
    return {"const": const, "op": op_type, "key": key, "matched_by": how,
            "weight_snr_db": round(snr, 2) if math.isfinite(snr) else 999.0}
