"""Mapping a Core ML package's compressed weights back to the state dict (``edgeir.targets.coreml.compressed``),
on synthetic tensors: by torch.export name, by value, through a folded scale, and the refusals."""

from __future__ import annotations

import pytest
import torch

from edgeir.errors import CheckFailed
from edgeir.targets.coreml.compressed import MIN_WEIGHT_SNR_DB, WeightMappingError, map_weights, placeholder_name

LUT = "constexpr_lut_to_dense"


def _palettize(tensor: torch.Tensor, levels: int = 16) -> torch.Tensor:
    """A 4-bit-like compression: every value to the nearest of ``levels`` evenly spaced ones, in float16."""
    low, high = float(tensor.min()), float(tensor.max())
    step = (high - low) / (levels - 1)
    return (torch.round((tensor - low) / step) * step + low).half()


@pytest.fixture
def state():
    generator = torch.Generator().manual_seed(0)
    return {"encoder.0.W_exp.weight": torch.randn(16, 8, 3, 3, generator=generator),
            "encoder.1.conv.weight": torch.randn(16, 8, 3, 3, generator=generator),
            "encoder.1.conv5.weight": torch.randn(32, 16, 1, 1, generator=generator),
            "encoder.1.gamma": torch.rand(1, 32, 1, 1, generator=generator) + 0.5,
            "encoder.1.beta": torch.zeros(1, 32, 1, 1)}


def test_the_placeholder_name_is_torch_exports():
    assert placeholder_name("encoder_level3.0.attn.gatedcnn.W_exp.weight", "p_") == \
        "p_encoder_level3_0_attn_gatedcnn_w_exp_weight"


def test_names_map_each_weight_to_its_tensor(state):
    decoded = {placeholder_name(key, "p_") + "_to_fp16_palettized": (LUT, _palettize(state[key]))
               for key in ("encoder.0.W_exp.weight", "encoder.1.conv.weight")}
    mapped = map_weights(decoded, state)
    assert sorted(mapped.weights) == ["encoder.0.W_exp.weight", "encoder.1.conv.weight"]
    assert all(r["matched_by"] == "name" and r["weight_snr_db"] > MIN_WEIGHT_SNR_DB for r in mapped.records)
    for key, value in mapped.weights.items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, _palettize(state[key]).float(), rtol=0, atol=0)


def test_a_nameless_weight_maps_by_value_to_the_closest_same_shape_tensor(state):
    mapped = map_weights({"renamed_0_to_fp16_palettized": (LUT, _palettize(state["encoder.1.conv.weight"]))}, state)
    assert [(r["key"], r["matched_by"]) for r in mapped.records] == [("encoder.1.conv.weight", "value")]


def test_a_folded_scale_is_undone_so_the_eager_model_computes_with_the_packages_weight(state):
    folded = _palettize(state["encoder.1.conv5.weight"] * state["encoder.1.gamma"].reshape(-1, 1, 1, 1))
    mapped = map_weights({"mul_26_weight_0_to_fp16_palettized": (LUT, folded)}, state)
    record = mapped.records[0]
    assert (record["key"], record["scale"], record["matched_by"]) == \
        ("encoder.1.conv5.weight", "encoder.1.gamma", "folded-scale")
    # what the eager model computes with: its weight times the scale it applies after the conv
    effective = mapped.weights["encoder.1.conv5.weight"] * state["encoder.1.gamma"].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(effective, folded.float(), rtol=1e-6, atol=1e-6)


def test_an_all_zero_weight_folded_from_a_zero_scale_substitutes_nothing(state):
    mapped = map_weights({"mul_22_weight_0_to_fp16_palettized": (LUT, torch.zeros(32, 16, 1, 1).half())}, state)
    assert mapped.weights == {} and mapped.records[0]["matched_by"] == "zero-scale"


def test_a_weight_that_is_not_its_tensors_compression_is_refused_by_name(state):
    key = "encoder.1.conv.weight"
    decoded = {placeholder_name(key, "p_") + "_to_fp16_palettized": (LUT, -_palettize(state[key]))}
    with pytest.raises(CheckFailed, match="is not a compression of `encoder.1.conv.weight`"):
        map_weights(decoded, state)


def test_a_weight_that_matches_nothing_is_refused(state):
    noise = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(9)).half()
    with pytest.raises(WeightMappingError, match="maps to no tensor of the reference"):
        map_weights({"const_7": (LUT, noise)}, state)


def test_two_weights_claiming_one_tensor_are_refused(state):
    value = _palettize(state["encoder.1.conv.weight"])
    decoded = {"p_encoder_1_conv_weight_to_fp16_palettized": (LUT, value),
               "p_encoder_1_conv_weight_to_fp16_palettized_1": (LUT, value)}
    with pytest.raises(WeightMappingError, match="both map to `encoder.1.conv.weight`"):
        map_weights(decoded, state)


def test_a_weight_close_to_two_tensors_is_ambiguous(state):
    twin = dict(state, **{"encoder.2.conv.weight": state["encoder.1.conv.weight"].clone()})
    with pytest.raises(WeightMappingError, match="matches several tensors"):
        map_weights({"renamed_0": (LUT, _palettize(state["encoder.1.conv.weight"]))}, twin)
