"""DiffIR with TLC (``edgeir export diffir --tlc``): local == global inside the training window, the
DMTA windows against a per-window reference written from the equations, CPEN kept global, and export."""

import copy

import torch

import edgeir
from edgeir.plugins.diffir.model import CPEN, DMTA, DiffIR, GlobalAvgPool, TransposedAttention, config_for
from edgeir.plugins.diffir.tlc import LocalTransposedAttention, to_local
from edgeir.plugins.tlc.windows import window_starts
from edgeir.recipe import TLCOptions

SMALL = TLCOptions(train_size=(32, 32))  # level-1 windows of 48 px: two per axis at 64x64


def _model(task: str = "deblur", seed: int = 0) -> DiffIR:
    torch.manual_seed(seed)
    model = DiffIR(config_for("tiny", task)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # sharper attention than the initial temperature of 1, so windows matter
        for name, p in model.named_parameters():
            if name.endswith("temperature"):
                p.copy_(torch.rand(p.shape, generator=generator) * 4 + 1)
    return model


def reference_dmta(layer: DMTA, kernel: tuple[int, int], x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
    """DMTA (DiffIR Eq. 6-7) with the attention applied independently to each TLC window, explicit loop."""
    scale, shift = layer.kernel(ipr).view(ipr.shape[0], -1, 1, 1).chunk(2, dim=1)
    qkv = layer.qkv_dwconv(layer.qkv(x * scale + shift))
    b, c3, h, w = qkv.shape
    c, heads = c3 // 3, layer.attend.num_heads
    kh, kw = min(h, kernel[0]), min(w, kernel[1])
    total = torch.zeros(b, c, h, w, dtype=torch.float64)
    count = torch.zeros(1, 1, h, w, dtype=torch.float64)
    for i in window_starts(h, kh):
        for j in window_starts(w, kw):
            q, k, v = (t.double().reshape(b, heads, c // heads, kh * kw)
                       for t in qkv[:, :, i:i + kh, j:j + kw].chunk(3, dim=1))
            q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # L2 over the window's pixels
            k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            attn = torch.softmax(q @ k.transpose(-2, -1) * layer.temperature.double(), dim=-1)  # (C/h x C/h)
            total[:, :, i:i + kh, j:j + kw] += (attn @ v).reshape(b, c, kh, kw)
            count[:, :, i:i + kh, j:j + kw] += 1
    return layer.project_out((total / count).float())


def test_local_equals_global_within_the_training_window():
    glob = _model()
    local, record = to_local(glob)  # train 256: every window (384 at level 1) spans a 64x64 input
    assert record["train_size"] == [256, 256] and record["layers"]["G.encoder_level1.0.attn.attend"] == [384, 384]
    assert list(local.state_dict()) == list(glob.state_dict())
    x, noise = torch.rand(1, 3, 64, 64), torch.randn(1, 256)
    with torch.no_grad():
        assert (glob(x, noise) - local(x, noise)).abs().max() < 1e-5


def test_dmta_runs_the_official_windows_and_cpen_stays_global():
    glob = _model()
    local, record = to_local(glob, SMALL)
    # Only the attention cores are converted: CPEN's pooling is the IPR, one vector per photo.
    converted = {name for name, m in local.named_modules() if isinstance(m, LocalTransposedAttention)}
    attention = {n for n, m in glob.named_modules() if isinstance(m, TransposedAttention)}
    assert converted == set(record["layers"]) == attention
    assert not any(name.startswith(("condition", "denoise")) for name in record["layers"])
    assert type(local.condition.E[-1]) is GlobalAvgPool and isinstance(local.condition, CPEN)
    # Feature sizes at a 32x32 crop: 32, 16, 8, 4 per level; windows 1.5x that.
    assert record["layers"]["G.encoder_level1.0.attn.attend"] == [48, 48]
    assert record["layers"]["G.latent.0.attn.attend"] == [6, 6]

    x, noise = torch.rand(1, 3, 64, 64), torch.randn(1, 256)
    with torch.no_grad():
        assert (glob.prior(x, noise) - local.prior(x, noise)).abs().max() == 0  # the IPR is unchanged
        out_local, out_glob = local(x, noise), glob(x, noise)
        assert (out_local - out_glob).abs().max() > 1e-4  # windows smaller than the map: a different function

        # One DMTA layer (level 1, 64x64 map, windows of 48 at rows/columns {0, 16}) against the reference.
        assert window_starts(64, 48) == [0, 16]
        ipr = glob.prior(x, noise)
        feat = torch.randn(1, 8, 64, 64)
        name = "G.encoder_level1.0.attn"
        expected = reference_dmta(glob.get_submodule(name), (48, 48), feat, ipr)
        got = local.get_submodule(name)(feat, ipr)
        assert (expected - got).abs().max() < 1e-5 * max(1.0, float(expected.abs().max()))
        assert (expected - glob.get_submodule(name)(feat, ipr)).abs().max() > 1e-4

        # The whole model: every DMTA replaced by the per-window reference gives the local output.
        reference = copy.deepcopy(glob)
        for layer_name, kernel in record["layers"].items():
            dmta = reference.get_submodule(layer_name.rpartition(".")[0])
            dmta.forward = (lambda d, k: lambda y, p: reference_dmta(d, k, y, p))(dmta, tuple(kernel))
        expected = reference(x, noise)
        assert (expected - out_local).abs().max() < 1e-5 * max(1.0, float(expected.abs().max()))


def test_inpainting_calibrates_with_its_four_input_channels():
    local, record = to_local(_model("inpaint"), SMALL)
    assert record["layers"]["G.encoder_level1.0.attn.attend"] == [48, 48]


def test_recipe_with_tlc_is_static_and_records_the_windows():
    from edgeir.discovery import methods
    from edgeir.recipe import RecipeOptions

    recipe = methods().get("diffir").recipe(_model(), RecipeOptions("tiny", "deblur", tlc=SMALL))
    assert recipe.tlc and recipe.tlc["layers"]["G.encoder_level1.0.attn.attend"] == [48, 48]
    assert [p.name for p in recipe.programs] == ["forward", "prior", "restore"]
    assert all(p.dynamic_hw is None for p in recipe.programs)


def test_export_with_tlc_runs_local_windows_and_verifies(tmp_path):
    bundle = edgeir.export("diffir", "onnx", variant="tiny", output=tmp_path, tlc=SMALL)
    manifest = bundle.manifest
    assert bundle.path.name.startswith("diffir-tlc-tiny-")
    assert manifest["recipe"]["tlc"]["train_size"] == [32, 32]
    assert manifest["recipe"]["tlc"]["layers"]["G.encoder_level1.0.attn.attend"] == [48, 48]
    assert manifest["export_check"]["status"] == "passed"
    assert edgeir.verify(bundle.path, photos=1).status == "passed"
