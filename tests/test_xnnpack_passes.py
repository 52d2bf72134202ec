"""The ExecuTorch target's generic XNNPACK delegate passes: output-equal, and a third-party model delegates whole.

The model here is a small DnCNN-like network written the way authors write them (channel
LayerNorm with ``mean(1)``, ``nn.LayerNorm`` on tokens, a ``chunk`` gate, ``F.normalize`` of a
transposed attention with a 4-D ``matmul``, ``var``, ``adaptive_avg_pool2d``, ``pow``): it
knows nothing of XNNPACK, and the target's passes alone must make it one delegate.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeir.targets.executorch.xnnpack_passes import PASSES, apply_delegate_passes


class ChannelNorm(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(1, channels, 1, 1) + 0.5)
        self.bias = nn.Parameter(torch.randn(1, channels, 1, 1) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2.0).mean(1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-6) * self.weight + self.bias


class Block(nn.Module):
    def __init__(self, channels: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.norm = ChannelNorm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.gate = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.token_norm = nn.LayerNorm(channels)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)
        q = F.normalize(q.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        k = F.normalize(k.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        x = x + (attn @ v.reshape(b, self.heads, c // self.heads, h * w)).reshape(b, c, h, w)
        a, g = self.gate(x).chunk(2, dim=1)
        x = x + a * torch.sigmoid(g)
        tokens = self.token_norm(x.flatten(2).transpose(1, 2))
        x = tokens.transpose(1, 2).reshape(b, c, h, w)
        stats = torch.sqrt(x.var(dim=(2, 3), keepdim=True) + 1e-6) + F.adaptive_avg_pool2d(x, 1)
        return self.proj(x * torch.sigmoid(stats)) + x.sum(dim=1, keepdim=True) / c


class ThirdPartyDnCNN(nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(Block(channels), Block(channels))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.tail(self.body(self.head(x)))


def _ops(exported) -> collections.Counter:
    return collections.Counter(str(n.target) for n in exported.graph.nodes if n.op == "call_function")


def test_passes_are_output_equal_and_remove_undelegable_forms() -> None:
    torch.manual_seed(0)
    model = ThirdPartyDnCNN().eval()
    x = torch.rand(1, 3, 16, 16)
    exported = torch.export.export(model, (x,), strict=False)
    rewritten, records = apply_delegate_passes(exported, (x,))
    assert [r["pass"] for r in records] == [name for name, _ in PASSES]
    by_name = {r["pass"]: r for r in records}
    for name in ("split_to_slices", "layer_norm", "reductions", "powers", "matmul_to_bmm", "broadcast_expand"):
        assert by_name[name]["rewrites"] > 0, name
    assert all(r["max_abs_error"] < 1e-4 for r in records)
    ops = _ops(rewritten)
    for gone in ("aten.chunk.default", "aten.layer_norm.default", "aten.var.correction", "aten.var.dim",
                 "aten.linalg_vector_norm.default", "aten.expand_as.default", "aten.matmul.default",
                 "aten.adaptive_avg_pool2d.default", "aten.sum.dim_IntList", "aten.pow.Tensor_Scalar"):
        assert ops[gone] == 0, gone
    with torch.no_grad():
        np.testing.assert_allclose(rewritten.module()(x).numpy(), model(x).numpy(), atol=1e-5)


def test_mean_forms() -> None:
    """Each reduction shape gets the form XNNPACK takes, and the values stay equal."""

    class Means(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            t = x.flatten(2)
            return (x.mean((2, 3)), x.mean(1, keepdim=True), t.mean(-1), t.sum(1), x.mean((1, 3)),
                    torch.linalg.vector_norm(t, dim=-1, keepdim=True))

    x = torch.randn(2, 4, 6, 5)
    exported = torch.export.export(Means(), (x,), strict=False)
    rewritten, records = apply_delegate_passes(exported, (x,))
    assert {r["pass"]: r["rewrites"] for r in records}["reductions"] == 6
    ops = _ops(rewritten)
    assert ops["aten.sum.dim_IntList"] == 0 and ops["aten.linalg_vector_norm.default"] == 0
    means = [n for n in rewritten.graph.nodes if n.target is torch.ops.aten.mean.dim]
    assert all(sorted(n.args[1]) == [2, 3] and n.args[2] for n in means)
    with torch.no_grad():
        for a, b in zip(rewritten.module()(x), Means()(x), strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_a_pass_that_changes_the_output_is_refused(monkeypatch) -> None:
    from edgeir.targets.executorch import xnnpack_passes

    def wrong(ctx) -> int:  # a "rewrite" that doubles every convolution's output
        n = 0
        for node in list(ctx.gm.graph.nodes):
            if node.target is torch.ops.aten.conv2d.default:
                with ctx.gm.graph.inserting_after(node):
                    doubled = ctx.gm.graph.call_function(torch.ops.aten.mul.Tensor, (node, 2.0))
                node.replace_all_uses_with(doubled, delete_user_cb=lambda u, d=doubled: u is not d)
                n += 1
        return n

    monkeypatch.setattr(xnnpack_passes, "PASSES", (("wrong", wrong),))
    x = torch.rand(1, 3, 8, 8)
    exported = torch.export.export(nn.Conv2d(3, 3, 3).eval(), (x,), strict=False)
    with pytest.raises(ValueError, match="delegate pass 'wrong' changed"):
        apply_delegate_passes(exported, (x,))


@pytest.mark.target_executorch
def test_third_party_model_is_one_xnnpack_delegate(tmp_path) -> None:
    """Through the target, as a plugin's recipe would reach it: one subgraph, nothing outside, equal output."""
    from edgeir.recipe import ExportRecipe, Program, TensorSpec, TileSpec
    from edgeir.target import ExportOptions
    from edgeir.targets.executorch import PTE, TARGET
    from edgeir.targets.executorch.runtime import ExecuTorchRunner

    torch.manual_seed(0)
    model = ThirdPartyDnCNN().eval()
    shape = (1, 3, 16, 16)
    program = Program(name="forward", module=model, inputs=(TensorSpec("image", shape),),
                      outputs=(TensorSpec("restored", shape),))
    recipe = ExportRecipe(programs=(program,), tile=TileSpec(size=(16, 16), overlap=4))
    result = TARGET.export(recipe, ExportOptions(backend="xnnpack", quant="fp32"), tmp_path)
    summary = result.delegation["forward"]
    assert summary["delegate_subgraphs"] == 1 and summary["non_delegated_nodes"] == 0, summary
    assert result.details["delegate_passes"]["forward"]
    x = program.example_inputs()[0]
    out = ExecuTorchRunner(tmp_path / PTE).run("forward", [x.numpy()])[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-4)


def test_strided_slices_and_repeat_interleave() -> None:
    class EvenOdd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            even, odd = x[:, 0::2], x[:, 1::2]
            y = torch.cat([even * odd, odd], 1).repeat_interleave(2, dim=1) + x[:, ::3].mean()
            return y + y.repeat(1, 1, 1, 1) * y[:, :1].repeat(1, 12, 1, 1)

    x = torch.randn(1, 6, 4, 5)
    exported = torch.export.export(EvenOdd(), (x,), strict=False)
    rewritten, records = apply_delegate_passes(exported, (x,))
    counts = {r["pass"]: r["rewrites"] for r in records}
    assert counts["strided_slices"] == 3 and counts["repeat_interleave"] == 1 and counts["repeats"] == 2
    steps = [n.args[4] for n in rewritten.graph.nodes if n.target is torch.ops.aten.slice.Tensor and len(n.args) > 4]
    assert all(step == 1 for step in steps)
    assert _ops(rewritten)["aten.repeat_interleave.self_int"] == 0 and _ops(rewritten)["aten.repeat.default"] == 0
    with torch.no_grad():
        np.testing.assert_allclose(rewritten.module()(x).numpy(), EvenOdd()(x).numpy(), rtol=1e-6, atol=1e-6)


class ScaledResidual(nn.Module):
    """A NAFNet-like block: channel LayerNorm with affine, 1x1 convolution, residual scaled by a parameter."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.norm = ChannelNorm(channels)
        self.expand = nn.Conv2d(channels, 2 * channels, 1)
        self.mix = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.beta = nn.Parameter(torch.randn(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.expand(self.norm(x))) * self.beta


def test_constant_arithmetic_folds_into_convolutions_and_saves_layout_copies(monkeypatch) -> None:
    """The residual scale, the LayerNorm affine and its eps go into convolutions: output equal, and no
    channels-first copy left inside the delegate but the program's output."""
    from edgeir.targets.executorch import xnnpack_passes
    from edgeir.targets.executorch.inspection import layout_conversions

    torch.manual_seed(0)
    model = ScaledResidual().eval()
    x = torch.rand(1, 8, 16, 16)
    exported = torch.export.export(model, (x,), strict=False)
    rewritten, records = apply_delegate_passes(exported, (x,))
    assert {r["pass"]: r["rewrites"] for r in records}["fold_into_convolutions"] == 3  # beta, the affine, eps
    with torch.no_grad():
        np.testing.assert_allclose(rewritten.module()(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert not [n for n in rewritten.graph_signature.parameters if "beta" in n]  # the folded weights are gone
    assert layout_conversions(rewritten)["channels_first_for"] == {"output": 1}

    monkeypatch.setattr(xnnpack_passes, "PASSES",
                        tuple((name, fn) for name, fn in xnnpack_passes.PASSES if name != "fold_into_convolutions"))
    unfolded, _ = apply_delegate_passes(exported, (x,))
    assert layout_conversions(unfolded)["to_channels_first"] > 1  # what the fold saves


def _quantized_scaled_residual(x: torch.Tensor):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeir.quant.pt2e import xnnpack_quantizer

    torch.manual_seed(0)
    prepared = prepare_pt2e(torch.export.export(ScaledResidual().eval(), (x,)).module(), xnnpack_quantizer(False, ()))
    prepared(x)
    return torch.export.export(convert_pt2e(prepared), (x,), strict=False)


def test_quantized_programs_are_not_folded() -> None:
    """A fold is exact only up to float rounding, which a quantize op downstream can turn into an int8 step."""
    x = torch.rand(1, 8, 16, 16)
    _, records = apply_delegate_passes(_quantized_scaled_residual(x), (x,))
    by_name = {r["pass"]: r for r in records}
    assert by_name["fold_into_convolutions"]["rewrites"] == 0
    assert by_name["reductions"]["rewrites"] > 0 and "mean_abs_error" in by_name["reductions"]


def test_a_wrong_pass_on_a_quantized_program_is_refused(monkeypatch) -> None:
    """Quantized programs get a sparse-change allowance (int8 steps), not a pass that moves every pixel."""
    from edgeir.targets.executorch import xnnpack_passes

    def shift(ctx) -> int:
        output = next(n for n in ctx.gm.graph.nodes if n.op == "output")
        source = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
        with ctx.gm.graph.inserting_before(output):
            moved = ctx.gm.graph.call_function(torch.ops.aten.add.Tensor, (source, 0.05))
        output.replace_input_with(source, moved)
        return 1

    monkeypatch.setattr(xnnpack_passes, "PASSES", (("shift", shift),))
    x = torch.rand(1, 8, 16, 16)
    with pytest.raises(ValueError, match="delegate pass 'shift' changed.*mean"):
        apply_delegate_passes(_quantized_scaled_residual(x), (x,))


class LongResidual(nn.Module):
    """Shallow features read by the first block's residual (float) and by a long residual after the body (int8)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Conv2d(channels, channels, 3, padding=1)
        self.mid = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.head(x)
        tokens = (self.body(shallow) + shallow).permute(0, 2, 3, 1)
        deep = self.mid(tokens.permute(0, 3, 1, 2))
        return self.tail(deep + shallow)


def test_an_int8_program_whose_dequantize_is_shared_lowers_to_one_delegate(tmp_path) -> None:
    """XNNPACK's partitioner groups a quantized add with its inputs' dequantize ops; one shared with an
    earlier float add made that group depend on itself (Hi-IR mobile int8 failed to lower). The target
    gives every reader its own dequantize before partitioning."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeir.quant.pt2e import xnnpack_quantizer
    from edgeir.quantization.stage import frozen
    from edgeir.recipe import ExportRecipe, Program, TensorSpec, TileSpec
    from edgeir.target import ExportOptions
    from edgeir.targets.executorch import PTE, TARGET
    from edgeir.targets.executorch.runtime import ExecuTorchRunner

    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    prepared = prepare_pt2e(torch.export.export(LongResidual().eval(), (x,)).module(), xnnpack_quantizer(False, ()))
    prepared(x)
    converted = frozen(convert_pt2e(prepared))  # as the int8 engine hands it to the target
    exported = torch.export.export(converted, (x,), strict=False)
    with pytest.raises(AssertionError, match="dependency cycles"):  # the stock lowering (executorch 1.4.1)
        to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])

    program = Program(name="forward", module=converted, inputs=(TensorSpec("image", tuple(x.shape)),),
                      outputs=(TensorSpec("restored", tuple(x.shape)),))
    recipe = ExportRecipe(programs=(program,), tile=TileSpec(size=(16, 16), overlap=4))
    result = TARGET.export(recipe, ExportOptions(backend="xnnpack", quant="int8"), tmp_path)
    summary = result.delegation["forward"]
    assert summary["delegate_subgraphs"] == 1 and summary["non_delegated_nodes"] == 0, summary
    out = ExecuTorchRunner(tmp_path / PTE).run("forward", [x.numpy()])[0]
    with torch.no_grad():
        expected = converted(x).numpy()
    assert np.abs(out - expected).max() <= 0.05 * np.abs(expected).max()  # int8 kernels vs the fake-quant graph


class TokenBlock(nn.Module):
    """A Swin-like layer on (B, H, W, C) tokens: LayerNorm -> window partition -> q/k/v; LayerNorm -> 1x1 conv."""

    def __init__(self, dim: int = 8, window: int = 4) -> None:
        super().__init__()
        self.window = window
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False)
        self.ffn = nn.Conv2d(dim, dim, 1)
        self.head = nn.Conv2d(3, dim, 3, padding=1)
        self.tail = nn.Conv2d(dim, 3, 3, padding=1)
        with torch.no_grad():
            for norm in (self.norm1, self.norm2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.5, 0.5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.head(image).permute(0, 2, 3, 1)
        b, h, w, c = x.shape
        s = self.window
        t = self.norm1(x).reshape(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        attn = torch.softmax(self.q(t) @ self.k(t).transpose(1, 2), dim=-1) @ self.v(t)
        x = x + attn.reshape(b, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        x = x + self.ffn(self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.tail(x.permute(0, 3, 1, 2))


def _rewritten_token_block():
    """TokenBlock exported and through every pass, its output checked equal: (input, exported, rewritten, rewrites)."""
    torch.manual_seed(0)
    model = TokenBlock().eval()
    x = torch.rand(1, 3, 8, 8)
    exported = torch.export.export(model, (x,), strict=False)
    rewritten, records = apply_delegate_passes(exported, (x,))
    with torch.no_grad():
        np.testing.assert_allclose(rewritten.module()(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    return x, exported, rewritten, {r["pass"]: r["rewrites"] for r in records}


def _passes_without(monkeypatch, *names: str) -> None:
    from edgeir.targets.executorch import xnnpack_passes

    monkeypatch.setattr(xnnpack_passes, "PASSES", tuple(p for p in PASSES if p[0] not in names))


def test_token_layernorm_affines_fold_into_the_layers_that_read_them(monkeypatch) -> None:
    """Through the window partition into q/k/v, through the permute into a 1x1 conv: output equal, fewer copies."""
    from edgeir.targets.executorch.inspection import layout_conversions

    x, exported, rewritten, rewrites = _rewritten_token_block()
    assert rewrites["fold_token_affines"] == 2
    assert not [n for n in rewritten.graph_signature.parameters if "norm" in n]  # the affines are gone

    # Where the tokens carry the channels-last tag (without token_permutes), each affine also cost copies.
    _passes_without(monkeypatch, "token_permutes")
    tagged, _ = apply_delegate_passes(exported, (x,))
    _passes_without(monkeypatch, "token_permutes", "fold_token_affines")
    unfolded, _ = apply_delegate_passes(exported, (x,))
    assert layout_conversions(unfolded)["to_channels_first"] > layout_conversions(tagged)["to_channels_first"]


def test_tokens_permuted_out_of_an_image_stay_in_plain_layout(monkeypatch) -> None:
    """The image -> (B, H, W, C) permutes become 3-D transposes: output equal, and the channels-last tag of
    the convolution before them no longer spreads into the tokens (each op there then copied back)."""
    from edgeir.targets.executorch.inspection import layout_conversions

    x, exported, rewritten, rewrites = _rewritten_token_block()
    assert rewrites["token_permutes"] == 2

    _passes_without(monkeypatch, "token_permutes")
    tagged, _ = apply_delegate_passes(exported, (x,))
    copies = layout_conversions(rewritten)
    assert copies["to_channels_first"] + copies["to_channels_last"] < \
        sum(layout_conversions(tagged)[key] for key in ("to_channels_first", "to_channels_last"))


def test_an_affine_read_by_anything_but_layers_is_kept() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.fc = nn.LayerNorm(8), nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.norm(x)
            return self.fc(y) + y

    x = torch.rand(1, 4, 8)
    _, records = apply_delegate_passes(torch.export.export(Residual().eval(), (x,), strict=False), (x,))
    assert {r["pass"]: r["rewrites"] for r in records}["fold_token_affines"] == 0


class KeptScaledResidual(nn.Module):
    """Two NAFNet-like blocks, the second one named for the quantizer to keep in float."""

    def __init__(self) -> None:
        super().__init__()
        self.first = ScaledResidual()
        self.kept = ScaledResidual()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kept(self.first(x))


def test_the_xnnpack_int8_engine_quantizes_the_folded_graph() -> None:
    """The folds run on the float program before the quantizer annotates it: the int8 program has no
    channels-first copy left (without them: one per residual scale and eps), the kept module stays
    float through the rewrite, and the means the passes made into 1x1 convolutions are not quantized."""
    from edgeir.quant.pt2e import XNNPACK_ENGINE
    from edgeir.recipe import Program, QuantHints, TensorSpec
    from edgeir.target import ExportOptions
    from edgeir.targets.executorch import TARGET
    from edgeir.targets.executorch.inspection import layout_conversions

    torch.manual_seed(0)
    x = torch.rand(1, 8, 16, 16)
    program = Program(name="forward", module=KeptScaledResidual().eval(), inputs=(TensorSpec("image", tuple(x.shape)),),
                      outputs=(TensorSpec("restored", tuple(x.shape)),))
    hints = QuantHints(keep_float=("kept",))
    calibration = [(torch.rand(2, 8, 16, 16),)]

    def int8_layout(engine):
        quantized = engine.quantize(program, "int8", calibration, hints)
        exported = torch.export.export(quantized.export_module, (x,), strict=False)
        lowered, _ = apply_delegate_passes(exported, (x,))
        return quantized.details, layout_conversions(lowered)

    details, conversions = int8_layout(TARGET.quant_engine(ExportOptions(backend="xnnpack", quant="int8")))
    assert details["rewritten_before_quantization"]["fold_into_convolutions"] == 6  # beta, affine and eps, twice
    # first.expand and first.mix in int8; kept's two layers and the four channel means float.
    assert details["quantized_layers"] == {"int8": 2, "float": 6}
    assert details["fakequant_vs_float_psnr_db"] > 35
    assert conversions["channels_first_for"] == {"output": 1}

    _, unfolded = int8_layout(XNNPACK_ENGINE)
    assert unfolded["to_channels_first"] > conversions["to_channels_first"]


class VarianceLayer(nn.Module):
    """A learned 1x1 convolution read as a variance: ``rsqrt(conv(x * x) + eps)`` (AnyIR's
    delegate-friendly LayerNorm computes its variance so)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.var = nn.Conv2d(channels, 1, 1, bias=False)
        self.var.weight.data.fill_(1.0 / channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(self.var(x * x) + 1e-5)


def test_an_eps_stays_after_the_quantizer_of_a_layer_it_follows() -> None:
    """In float the ``+ eps`` folds into the convolution's bias; before quantization it does not, since
    there it would be added before the layer's output quantizer and round away."""
    from edgeir.targets.executorch.xnnpack_passes import rewrite_before_quantization

    x = torch.rand(1, 8, 16, 16)
    exported = torch.export.export(VarianceLayer().eval(), (x,), strict=False)
    _, float_records = apply_delegate_passes(exported, (x,))
    _, records = rewrite_before_quantization(exported, (x,))
    assert {r["pass"]: r["rewrites"] for r in float_records}["fold_into_convolutions"] == 1
    assert {r["pass"]: r["rewrites"] for r in records}["fold_into_convolutions"] == 0
