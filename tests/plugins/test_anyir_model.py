"""AnyIR plugin: official layout, train/eval behaviour, export rewrites and checkpoint reading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeir.plugins.anyir.checkpoint import infer_config, official_state_dict
from edgeir.plugins.anyir.model import (
    VARIANTS,
    AddFusion,
    AnyIR,
    AnyIRConfig,
    FrequencyFusion,
)
from edgeir.plugins.anyir.rewrites import (
    EXPORT_REWRITES,
    delegate_friendly,
    fft_fusion_to_add,
    fold_batchnorm,
)

TOLERANCE = 1e-4
SIZES = [(64, 64), (64, 96), (128, 128)]


def _randomised(config: AnyIRConfig, seed: int = 0) -> AnyIR:
    """An eval-mode model whose BatchNorm statistics, lam, tau and temperatures are not defaults."""
    torch.manual_seed(seed)
    model = AnyIR(config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.3, 3.0)
            elif name.endswith("running_mean"):
                tensor.normal_(0.0, 0.5)
            else:
                tensor.add_(torch.randn_like(tensor) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> AnyIR:
    return _randomised(VARIANTS["tiny"])


# ---------------------------------------------------------------------------- official layout


def test_paper_variant_matches_the_release_size() -> None:
    model = AnyIR(VARIANTS["paper"])
    assert sum(p.numel() for p in model.parameters()) == 5_736_376
    state = model.state_dict()
    assert len(state) == 825
    assert sum(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in state) == 111


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("patch_embed.proj.weight", (28, 3, 3, 3)),
        ("encoder_level1.0.norm1.body.weight", (28,)),
        ("encoder_level1.0.norm1.body.bias", (28,)),
        ("encoder_level1.0.attn.temperature", (1, 1, 1)),
        ("encoder_level1.0.attn.qkv.weight", (42, 14, 1, 1)),
        ("encoder_level1.0.attn.qkv_dwconv.weight", (42, 1, 3, 3)),
        ("encoder_level1.0.attn.gatedcnn.norm.running_var", (14,)),
        ("encoder_level1.0.attn.gatedcnn.W_exp.weight", (37, 14, 1, 1)),
        ("encoder_level1.0.attn.gatedcnn.W_gate.weight", (14, 23, 1, 1)),
        ("encoder_level1.0.attn.gatedcnn.W_depth.weight", (9, 1, 7, 7)),
        ("encoder_level1.0.attn.gatedcnn.W_proj.weight", (14, 14, 1, 1)),
        ("encoder_level1.0.attn.gatedcnn.tau", (1, 14, 1, 1)),
        ("encoder_level1.0.attn.lam", ()),
        ("encoder_level1.0.attn.project_out.weight", (28, 28, 1, 1)),
        ("encoder_level1.0.ffn.project_in.weight", (112, 28, 1, 1)),
        ("encoder_level1.0.ffn.dwconv.weight", (112, 1, 3, 3)),
        ("encoder_level1.0.ffn.project_out.weight", (28, 56, 1, 1)),
        ("latent.6.attn.temperature", (8, 1, 1)),
        ("latent.6.attn.gatedcnn.W_depth.weight", (75, 1, 7, 7)),
        ("down1_2.body.0.weight", (14, 28, 3, 3)),
        ("up4_3.body.0.weight", (224, 112, 3, 3)),
        ("reduce_chan_level3.weight", (112, 168, 1, 1)),
        ("reduce_dim_level3.weight", (112, 224, 1, 1)),
        ("reduce_chan_level2.weight", (56, 112, 1, 1)),
        ("decoder_level1.2.attn.qkv.weight", (84, 28, 1, 1)),
        ("refinement.3.ffn.project_out.weight", (56, 112, 1, 1)),
        ("output.weight", (3, 56, 3, 3)),
    ],
)
def test_paper_state_dict_has_official_shapes(key: str, shape: tuple[int, ...]) -> None:
    state = AnyIR(VARIANTS["paper"]).state_dict()
    assert tuple(state[key].shape) == shape


def test_variant_parameter_counts() -> None:
    counts = {name: sum(p.numel() for p in AnyIR(cfg).parameters()) for name, cfg in VARIANTS.items()}
    assert counts == {"paper": 5_736_376, "mobile": 1_213_298, "tiny": 132_189}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 7}, "dim must be an even"),
        ({"in_channels": 1}, "in_channels must equal out_channels"),
        ({"heads": (3, 2, 4, 8)}, "heads\\[0\\]=3"),
        ({"num_blocks": (1, 1, 1)}, "num_blocks"),
        ({"layernorm": "WithBias"}, "layernorm"),
    ],
)
def test_config_rejects_inconsistent_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnyIRConfig(**kwargs)


# ------------------------------------------------------------------------------ eager behaviour


@pytest.mark.parametrize("size", [(60, 64), (64, 36), (20, 20)])
def test_input_not_multiple_of_8_is_rejected(tiny: AnyIR, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny(torch.rand(1, 3, *size))


def test_output_keeps_input_shape(tiny: AnyIR) -> None:
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert tiny(x).shape == x.shape


def test_batchnorm_trains_in_train_mode_only() -> None:
    model = _randomised(VARIANTS["tiny"])
    bn = model.encoder_level1[0].attn.gatedcnn.norm
    x = torch.rand(2, 3, 64, 64)
    before = bn.running_mean.clone()
    with torch.no_grad():
        eval_out = model(x)
    assert torch.equal(bn.running_mean, before)
    model.train()
    train_out = model(x)
    assert not torch.equal(bn.running_mean, before)
    assert not torch.allclose(train_out, eval_out, atol=1e-3)
    train_out.mean().backward()
    attn = model.encoder_level1[0].attn
    for p in (attn.lam, attn.temperature, attn.gatedcnn.tau, attn.gatedcnn.W_depth.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(8, 8), (16, 24), (15, 17)])
def test_fft_fusion_equals_add(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    a, b = torch.randn(2, 5, *size), torch.randn(2, 5, *size)
    torch.testing.assert_close(FrequencyFusion()(a, b), AddFusion()(a, b), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ rewrites


def _max_error(reference: nn.Module, candidate: nn.Module, size: tuple[int, int]) -> float:
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[0] * size[1]))
    with torch.no_grad():
        return (reference(x) - candidate(x)).abs().max().item()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "rewrite", [fold_batchnorm, fft_fusion_to_add, delegate_friendly], ids=lambda f: f.__name__
)
def test_each_rewrite_preserves_eval_outputs(tiny: AnyIR, rewrite, size: tuple[int, int]) -> None:
    assert _max_error(tiny, rewrite(tiny), size) < TOLERANCE


@pytest.mark.parametrize(
    "config",
    [
        VARIANTS["tiny"],
        AnyIRConfig(dim=8, num_blocks=(1, 2, 1, 1), num_refinement_blocks=0, heads=(2, 2, 4, 4), bias=True),
        AnyIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, layernorm="bias_free"),
    ],
    ids=["tiny", "bias_heads", "bias_free_ln"],
)
@pytest.mark.parametrize("size", SIZES)
def test_all_rewrites_together_preserve_eval_outputs(config: AnyIRConfig, size: tuple[int, int]) -> None:
    model = _randomised(config, seed=3)
    rewritten = model
    for _, rewrite, _ in EXPORT_REWRITES:
        rewritten = rewrite(rewritten)
    assert _max_error(model, rewritten, size) < TOLERANCE


def test_rewrites_remove_what_they_target(tiny: AnyIR) -> None:
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_batchnorm(tiny).modules())
    assert not any(isinstance(m, FrequencyFusion) for m in fft_fusion_to_add(tiny).modules())
    names = {type(m).__name__ for m in delegate_friendly(tiny).modules()}
    assert "DegradationAdaptationBlock" not in names and "DelegatedBlock" in names


def test_rewrites_do_not_modify_their_input(tiny: AnyIR) -> None:
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    modules_before = [type(m) for m in tiny.modules()]
    for _, rewrite, _ in EXPORT_REWRITES:
        assert rewrite(tiny) is not tiny
    assert [type(m) for m in tiny.modules()] == modules_before
    after = tiny.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_export_rewrites_are_named_and_ordered() -> None:
    assert [name for name, _, _ in EXPORT_REWRITES] == [
        "fold_batchnorm",
        "fft_fusion_to_add",
        "delegate_friendly",
    ]
    assert all(callable(fn) and isinstance(desc, str) and desc for _, fn, desc in EXPORT_REWRITES)


def _aten_ops(model: nn.Module, x: torch.Tensor) -> list[torch.fx.Node]:
    program = torch.export.export(model, (x,)).run_decompositions()
    return [n for n in program.graph.nodes if n.op == "call_function"]


def test_rewritten_graph_has_no_ops_xnnpack_leaves_out(tiny: AnyIR) -> None:
    """Core-ATen ops that XNNPACK does not delegate (see shared NOTES) must not reappear."""
    rewritten = tiny
    for _, rewrite, _ in EXPORT_REWRITES:
        rewritten = rewrite(rewritten)
    nodes = _aten_ops(rewritten, torch.rand(1, 3, 64, 64))
    forbidden = {
        "sum",
        "split_with_sizes",
        "expand",
        "var_mean",
        "_native_batch_norm_legit_no_training",
        "index",
    }
    forbidden |= {"native_layer_norm", "_fft_r2c", "_fft_c2r", "repeat", "linalg_vector_norm"}
    names = [n.target.__name__.split(".")[0] for n in nodes]
    assert not set(names) & forbidden
    for node in nodes:
        name = node.target.__name__.split(".")[0]
        if name == "mean":
            assert sorted(d % 4 for d in node.args[1]) == [2, 3], "channel mean is not delegated"
        if name == "slice":
            assert (node.args[4] if len(node.args) > 4 else 1) == 1, "strided slices are not delegated"
    # And the unrewritten model does contain them, so the check can fail.
    original = {n.target.__name__.split(".")[0] for n in _aten_ops(tiny, torch.rand(1, 3, 64, 64))}
    assert {"split_with_sizes", "linalg_vector_norm", "expand", "_fft_r2c"} <= original


# ---------------------------------------------------------------------------------- checkpoints


def _lightning_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, object]:
    return {
        "epoch": 109,
        "global_step": 546700,
        "pytorch-lightning_version": "2.0.0",
        "state_dict": {**{f"net.{k}": v for k, v in state.items()}, "loss_fn.dummy": torch.zeros(1)},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}],
        "lr_schedulers": [{"last_epoch": 109}],
        "hyper_parameters": {"lr": 2e-4},
    }


def test_official_state_dict_reads_a_lightning_checkpoint(tiny: AnyIR) -> None:
    state = tiny.state_dict()
    converted = official_state_dict(_lightning_checkpoint(state))
    assert converted.keys() == state.keys()
    fresh = AnyIR(VARIANTS["tiny"])
    fresh.load_state_dict(converted, strict=True)
    assert all(torch.equal(fresh.state_dict()[k], state[k]) for k in state)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {f"net.{k}": v for k, v in sd.items()},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"params": sd},
        lambda sd: {"params_ema": {f"module.{k}": v for k, v in sd.items()}, "params": {}},
    ],
    ids=["plain", "net_prefix", "module_prefix", "params", "params_ema"],
)
def test_official_state_dict_reads_plain_dicts(tiny: AnyIR, wrap) -> None:
    state = tiny.state_dict()
    converted = official_state_dict(wrap(state))
    assert converted.keys() == state.keys()
    assert all(converted[k] is state[k] for k in state)


def test_official_state_dict_keeps_unknown_network_keys(tiny: AnyIR) -> None:
    checkpoint = _lightning_checkpoint(tiny.state_dict())
    checkpoint["state_dict"]["net.extra_head.weight"] = torch.ones(2)
    converted = official_state_dict(checkpoint)
    assert "extra_head.weight" in converted and "loss_fn.dummy" not in converted
    with pytest.raises(RuntimeError, match="extra_head.weight"):
        AnyIR(VARIANTS["tiny"]).load_state_dict(converted, strict=True)


def test_official_state_dict_rejects_non_tensors_and_empty() -> None:
    with pytest.raises(ValueError, match="not"):
        official_state_dict({"patch_embed.proj.weight": [1, 2, 3]})
    with pytest.raises(ValueError, match="no network weights"):
        official_state_dict({"state_dict": {}})


@pytest.mark.parametrize(
    "config",
    [
        VARIANTS["tiny"],
        VARIANTS["mobile"],
        AnyIRConfig(dim=32, num_blocks=(4, 6, 6, 8)),  # the older release defaults
        AnyIRConfig(
            dim=8,
            num_blocks=(2, 1, 1, 3),
            num_refinement_blocks=0,
            heads=(2, 2, 4, 4),
            ffn_expansion_factor=2.66,
            bias=True,
            layernorm="bias_free",
        ),
    ],
    ids=["tiny", "mobile", "older_release", "odd"],
)
def test_infer_config_recovers_the_architecture(config: AnyIRConfig) -> None:
    state = AnyIR(config).state_dict()
    assert infer_config(_lightning_checkpoint(state)) == config
    assert infer_config(state) == config


def test_infer_config_rejects_other_networks() -> None:
    with pytest.raises(ValueError, match="not an AnyIR state dict"):
        infer_config({"conv_first.weight": torch.zeros(1)})
