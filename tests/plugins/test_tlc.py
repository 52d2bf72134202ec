"""TLC: window geometry, local operators against the paper's equations, local == global where the
window spans the input, and NAFNet-Local / Restormer-Local against reference computations written
here from the paper (integral-image local mean, explicit per-window attention loop)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgeir
from edgeir.errors import UsageError
from edgeir.plugins.tlc.ops import local_mean, local_variance, windowed
from edgeir.plugins.tlc.windows import kernel_for, window_starts
from edgeir.recipe import TLCOptions


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random values for every parameter (NAFNet's beta/gamma start at zero, which hides its blocks)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2 + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


# ---- reference computations, from the paper's equations -------------------------------------------


def integral_local_mean(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """TLC Eq. 2 by the prefix-sum trick: box sums from an integral image, then replicate the border."""
    h, w = x.shape[-2:]
    k1, k2 = min(h, kernel[0]), min(w, kernel[1])
    s = F.pad(x.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    box = s[..., k1:, k2:] + s[..., :-k1, :-k2] - s[..., k1:, :-k2] - s[..., :-k1, k2:]
    out = (box / (k1 * k2)).to(x.dtype)
    ph, pw = h - out.shape[-2], w - out.shape[-1]
    return F.pad(out, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2), mode="replicate")


class ReferencePool(nn.Module):
    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel

    def forward(self, x):
        return integral_local_mean(x, self.kernel)


class ReferenceWindowAttention(nn.Module):
    """Restormer's MDTA applied independently to each overlapping window, in an explicit loop."""

    def __init__(self, attn, kernel):
        super().__init__()
        self.attn, self.kernel = attn, kernel

    def forward(self, x):
        a = self.attn
        qkv = a.qkv_dwconv(a.qkv(x))
        b, c3, h, w = qkv.shape
        k1, k2 = min(h, self.kernel[0]), min(w, self.kernel[1])
        out = torch.zeros(b, c3 // 3, h, w)
        count = torch.zeros(1, 1, h, w)
        rows = math.ceil(h / k1)
        cols = math.ceil(w / k2)
        step_i = k1 if rows == 1 else math.ceil((h - k1) / (rows - 1))
        step_j = k2 if cols == 1 else math.ceil((w - k2) / (cols - 1))
        for r in range(rows):
            i = min(r * step_i, h - k1)
            for s in range(cols):
                j = min(s * step_j, w - k2)
                q, k, v = qkv[:, :, i:i + k1, j:j + k2].chunk(3, dim=1)
                heads = a.num_heads
                q, k, v = (t.reshape(b, heads, -1, k1 * k2) for t in (q, k, v))
                q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                attn = torch.softmax(q @ k.transpose(-2, -1) * a.temperature, dim=-1)
                out[:, :, i:i + k1, j:j + k2] += (attn @ v).reshape(b, -1, k1, k2)
                count[:, :, i:i + k1, j:j + k2] += 1
        return a.project_out(out / count)


# ---- geometry and operators ----------------------------------------------------------------------


def test_window_layout_matches_official_example():
    # A GoPro 720x1280 input at level 1 with 384x384 windows (the official RestormerLocal).
    assert window_starts(720, 384) == [0, 336]
    assert window_starts(1280, 384) == [0, 299, 598, 896]
    assert window_starts(100, 384) == [0] and window_starts(96, 48) == [0, 48]


def test_kernel_is_one_and_a_half_times_the_training_feature_size():
    options = TLCOptions()
    assert options.resolved_base_size == (384, 384)
    assert [kernel_for(options, (s, s))[0] for s in (256, 128, 64, 32, 16)] == [384, 192, 96, 48, 24]
    assert kernel_for(TLCOptions(train_size=(128, 64), base_size=(200, 100)), (64, 32)) == (100, 50)
    with pytest.raises(ValueError):
        TLCOptions(train_size=(0, 4))


@pytest.mark.parametrize("kernel", [(5, 7), (13, 3), (40, 6), (64, 64)])
def test_local_mean_equals_integral_image(kernel):
    x = torch.rand(2, 3, 24, 31)
    assert torch.allclose(local_mean(x, kernel).expand_as(x), integral_local_mean(x, kernel), atol=1e-6)


def test_local_variance_and_windowed_identity():
    x = torch.rand(1, 2, 20, 17)
    mean = integral_local_mean(x, (6, 5))
    var = integral_local_mean(x * x, (6, 5)) - mean * mean
    assert torch.allclose(local_variance(x, (6, 5)), var, atol=1e-5)
    # Averaging a pointwise function over overlapping windows gives the function back.
    assert torch.allclose(windowed(torch.sin, x, (7, 6)), torch.sin(x), atol=1e-6)


# ---- local == global where the window spans the input ----------------------------------------------


@pytest.mark.parametrize("method", ["nafnet", "restormer"])
def test_local_equals_global_within_the_training_window(method):
    glob = _randomise(edgeir.build_model(method, variant="tiny"))
    local = edgeir.build_model(f"{method}-local", variant="tiny")
    assert list(local.state_dict()) == list(glob.state_dict())
    local.load_state_dict(glob.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert (glob(x) - local(x)).abs().max() < 1e-5


def test_anyir_recipe_with_tlc_drops_the_global_delegate_rewrite():
    from edgeir.discovery import methods
    from edgeir.recipe import RecipeOptions

    model = edgeir.build_model("anyir", variant="tiny")
    recipe = methods().get("anyir").recipe(model, RecipeOptions("tiny", "allinone3", tlc=TLCOptions()))
    assert recipe.tlc and recipe.programs[0].dynamic_hw is None
    assert "delegate_friendly" not in {r.name for r in recipe.rewrites}


def test_anyir_local_equals_global_within_the_training_window():
    from edgeir.plugins.anyir.tlc import to_local

    glob = edgeir.build_model("anyir", variant="tiny")
    local, record = to_local(glob)
    assert record["layers"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert (glob(x) - local(x)).abs().max() < 1e-5
        small, _ = to_local(glob, TLCOptions(train_size=(16, 16)))
        assert (glob(x) - small(x)).abs().max() > 1e-4  # windows smaller than the map: a different function


# ---- larger inputs: against the reference computations -------------------------------------------

SMALL = TLCOptions(train_size=(32, 32))  # level-1 windows of 48 px: several per axis at 96x80


def test_nafnet_local_equals_integral_image_reference():
    from edgeir.plugins.nafnet.local import to_local

    glob = _randomise(edgeir.build_model("nafnet", variant="tiny"))
    local, record = to_local(glob, SMALL)
    reference = copy.deepcopy(glob)
    # Feature sizes at a 32x32 crop: 32, 16, 8, 4 per level and 2 in the middle; windows 1.5x that.
    for name, module in list(reference.named_modules()):
        if isinstance(module, nn.AdaptiveAvgPool2d):
            level = int(name.split(".")[1]) if not name.startswith("middle") else 4
            size = 32 // 2 ** (level if name.startswith(("encoders", "middle")) else 3 - level)
            parent = reference.get_submodule(name.rpartition(".")[0])
            parent[0] = ReferencePool((size * 3 // 2, size * 3 // 2))
            assert record["layers"][name] == [size * 3 // 2] * 2
    x = torch.rand(1, 3, 96, 80)
    with torch.no_grad():
        expected, got = reference(x), local(x)
        scale = expected.abs().max()
        assert (expected - got).abs().max() < 1e-5 * scale
        assert (expected - glob(x)).abs().max() > 1e-3 * scale


def test_restormer_local_equals_per_window_reference():
    from edgeir.plugins.restormer.local import to_local
    from edgeir.plugins.restormer.model import TransposedAttention

    glob = _randomise(edgeir.build_model("restormer", variant="tiny"))
    local, record = to_local(glob, SMALL)
    reference = copy.deepcopy(glob)
    for name, module in list(reference.named_modules()):
        if isinstance(module, TransposedAttention):
            parent_name, _, child = name.rpartition(".")
            setattr(reference.get_submodule(parent_name), child,
                    ReferenceWindowAttention(module, tuple(record["layers"][name])))
    assert record["layers"]["encoder_level1.0.attn"] == [48, 48] and record["layers"]["latent.0.attn"] == [6, 6]
    x = torch.rand(1, 3, 96, 80)
    with torch.no_grad():
        expected, got = reference(x), local(x)
        scale = expected.abs().max()
        assert (expected - got).abs().max() < 1e-5 * scale
        assert (expected - glob(x)).abs().max() > 1e-3 * scale


# ---- export ---------------------------------------------------------------------------------------


def test_tlc_refused_for_a_method_without_global_operations(tmp_path):
    with pytest.raises(UsageError, match="declares none"):
        edgeir.export("nafnet-local", "onnx", variant="tiny", output=tmp_path, tlc=True)


def test_export_with_tlc_runs_local_windows_and_verifies(tmp_path):
    # 64x64 input, level-1 windows of 48 px: the artifact really runs overlapping windows.
    bundle = edgeir.export("restormer", "onnx", variant="tiny", output=tmp_path, tlc=TLCOptions(train_size=(32, 32)))
    manifest = bundle.manifest
    assert bundle.path.name.startswith("restormer-tlc-tiny-")  # never the registered restormer-local's directory
    assert manifest["recipe"]["tlc"]["train_size"] == [32, 32]
    assert manifest["recipe"]["tlc"]["layers"]["encoder_level1.0.attn"] == [48, 48]
    assert manifest["recipe"]["programs"][0]["dynamic_hw"] is None
    assert manifest["export_check"]["status"] == "passed"
    assert edgeir.verify(bundle.path, photos=1).status == "passed"


def test_cli_tlc_on_a_method_without_global_operations_is_one_sentence(tmp_path, capsys):
    from edgeir.cli import main

    assert main(["export", "nafnet-local", "--target", "onnx", "--variant", "tiny", "--tlc-train-size", "128",
                 "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "declares none" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_integral_mean_rewrite_keeps_the_output():
    from edgeir.plugins.nafnet.local import to_local
    from edgeir.plugins.tlc.ops import LocalAvgPool2d, use_integral_means

    local, _ = to_local(_randomise(edgeir.build_model("nafnet", variant="tiny")), SMALL)
    fast = use_integral_means(local)
    assert all(m.integral for m in fast.modules() if isinstance(m, LocalAvgPool2d))
    assert not any(m.integral for m in local.modules() if isinstance(m, LocalAvgPool2d))
    x = torch.rand(1, 3, 96, 80)
    with torch.no_grad():
        expected = local(x)
        assert (fast(x) - expected).abs().max() < 1e-5 * expected.abs().max()
    assert torch.allclose(local_mean(x, (7, 9), integral=True), integral_local_mean(x, (7, 9)), atol=1e-5)
