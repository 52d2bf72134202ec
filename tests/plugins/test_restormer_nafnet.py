"""Restormer and NAFNet: official key names load strictly, wrong keys are named, released counts."""

import pytest
import torch

import edgeir
from edgeir.discovery import methods
from edgeir.errors import CheckpointError

# Entries of the official state dicts (research notes §2-3), as the released files spell them.
OFFICIAL_KEYS = {
    "restormer": ["patch_embed.proj.weight", "encoder_level1.0.norm1.body.weight", "encoder_level1.0.norm1.body.bias",
                  "encoder_level1.0.attn.temperature", "encoder_level1.0.attn.qkv_dwconv.weight",
                  "encoder_level1.0.ffn.project_in.weight", "down1_2.body.0.weight", "up4_3.body.0.weight",
                  "reduce_chan_level3.weight", "refinement.0.ffn.dwconv.weight", "output.weight"],
    "nafnet": ["intro.weight", "intro.bias", "encoders.0.0.conv1.weight", "encoders.0.0.sca.1.weight",
               "encoders.0.0.beta", "encoders.0.0.gamma", "encoders.0.0.norm1.weight", "downs.0.weight",
               "middle_blks.0.conv5.bias", "ups.0.0.weight", "decoders.3.0.norm2.bias", "ending.weight"],
}


@pytest.mark.parametrize("method", ["restormer", "nafnet"])
@pytest.mark.parametrize("wrapper", ["params", "params_ema", None])
def test_official_layout_checkpoint_loads_strictly_into_global_and_local(method, wrapper, tmp_path):
    source = edgeir.build_model(method, variant="tiny")
    state = source.state_dict()
    assert set(OFFICIAL_KEYS[method]) <= set(state)
    assert "ups.0.0.bias" not in state and "encoder_level1.0.attn.qkv.bias" not in state  # bias-free convs
    path = tmp_path / "official.pth"
    torch.save({wrapper: state} if wrapper else state, path)
    for name in (method, f"{method}-local"):
        target = methods().get(name).build_model("tiny")
        methods().get(name).load_checkpoint(target, path)
        assert all(torch.equal(target.state_dict()[k], v) for k, v in state.items())


def test_wrong_keys_are_named(tmp_path):
    state = edgeir.build_model("nafnet", variant="tiny").state_dict()
    state["encoders.0.0.sca.weight"] = state.pop("encoders.0.0.sca.1.weight")
    path = tmp_path / "renamed.pth"
    torch.save({"params": state}, path)
    with pytest.raises(CheckpointError, match=r"encoders\.0\.0\.sca\.1\.weight.*encoders\.0\.0\.sca\.weight"):
        methods().get("nafnet").load_checkpoint(edgeir.build_model("nafnet", variant="tiny"), path)


def _count(method, variant, task):
    return sum(p.numel() for p in methods().get(method).build_model(variant, task).parameters())


def test_task_dependent_paper_configurations():
    assert _count("restormer", "paper", "denoise25") == 26_111_668  # BiasFree LayerNorm, official 26.112M
    assert _count("nafnet", "paper", "denoise-real") == 29_159_715  # SIDD width 32, official 29.160M
    assert len(methods().get("restormer").build_model("paper", "denoise-real").state_dict()) == 406


@pytest.mark.slow
def test_width64_counts():
    assert _count("nafnet", "width64", "deblur") == 67_888_835
    assert _count("nafnet", "width64", "denoise-real") == 115_982_915


def test_restormer_rejects_sizes_that_are_not_multiples_of_8():
    with pytest.raises(ValueError, match="multiples of 8"):
        edgeir.build_model("restormer", variant="tiny")(torch.rand(1, 3, 60, 64))


@pytest.mark.parametrize("method", ["restormer", "nafnet"])
def test_tlc_form_loads_its_global_models_shipped_weights(method):
    from edgeir.weights.build import build_model_with_weights

    _, global_info = build_model_with_weights(method, "tiny", "denoise25")
    _, local_info = build_model_with_weights(f"{method}-local", "tiny", "denoise25")
    assert local_info.source == global_info.source == "edgeir-default"
    assert local_info.state_sha256 == global_info.state_sha256 and local_info.path == global_info.path


def test_gaussian_denoising_takes_the_sidd_layout():
    from edgeir.plugins.nafnet import config

    assert config("paper", "denoise25") == config("paper", "denoise-real") != config("paper", "deblur")
