"""DiffIR: official configurations, the unrolled prior diffusion, the split programs and checkpoints."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edgeir
from edgeir.discovery import methods
from edgeir.errors import CheckpointError
from edgeir.plugins.diffir.checkpoint import SCHEDULE_BUFFERS
from edgeir.plugins.diffir.model import (
    DiffIR,
    config_for,
    diffusion_coefficients,
    nearest_upsample,
    unique_parameter_count,
)

# Appendix A of the implementation survey: the official DiffIRS2 instantiated with random weights.
OFFICIAL = {  # task: (unique params, state-dict entries incl. duplicated sub-trees and 12 schedule buffers)
    "deblur": (26_911_934, 588),
    "sr4": (24_971_206, 615),
    "sr2": (24_981_574, 615),
    "sr1": (25_023_046, 615),
    "inpaint": (26_402_474, 289),
}


def official_layout(model: DiffIR) -> dict[str, torch.Tensor]:
    """The state dict the official DiffIRS2 would save: our keys plus its duplicates and DDPM buffers."""
    sd = dict(model.state_dict())
    for key, value in list(sd.items()):
        if key.startswith("denoise."):
            sd["diffusion.model." + key[len("denoise."):]] = value.clone()
        if key.startswith("condition."):
            sd["diffusion.condition." + key[len("condition."):]] = value.clone()
    betas = torch.linspace(0.1**0.5, 0.99**0.5, 4, dtype=torch.float64) ** 2
    for name in SCHEDULE_BUFFERS:
        sd[f"diffusion.{name}"] = betas.float() if name == "betas" else torch.rand(4)
    return sd


def seeded(variant: str, task: str, seed: int) -> DiffIR:
    torch.manual_seed(seed)
    return DiffIR(config_for(variant, task)).eval()


@pytest.mark.parametrize("task", sorted(OFFICIAL))
def test_paper_configs_have_the_official_counts(task):
    with torch.device("meta"):
        model = DiffIR(config_for("paper", task))
    params, entries = OFFICIAL[task]
    assert unique_parameter_count(model) == params
    assert len(official_layout_meta(model)) == entries


def official_layout_meta(model: DiffIR) -> list[str]:
    keys = list(model.state_dict())
    keys += ["diffusion.model." + k[8:] for k in keys if k.startswith("denoise.")]
    keys += ["diffusion.condition." + k[10:] for k in keys if k.startswith("condition.")]
    return keys + [f"diffusion.{name}" for name in SCHEDULE_BUFFERS]


def test_declared_paper_count_is_the_deblur_one():
    assert methods().get("diffir").variant("paper").declared_params == OFFICIAL["deblur"][0]


def test_schedule_matches_the_release():
    coefficients = diffusion_coefficients(config_for("paper", "deblur"))
    coef1, coef2 = zip(*coefficients, strict=True)
    # ldm/ddpm.py register_schedule with T=4, linear_start 0.1, linear_end 0.99 (survey §5).
    np.testing.assert_allclose(coef1, [1.0, 0.76519, 0.63627, 0.50593], atol=1e-5)
    np.testing.assert_allclose(coef2, [0.0, 0.23025, 0.31526, 0.07421], atol=1e-5)


def test_prior_is_the_unrolled_posterior_mean_chain():
    model = seeded("tiny", "deblur", 0)
    x = torch.rand(1, 3, 32, 32)
    noise = torch.randn(1, 256)
    c = model.condition(x)
    betas = np.linspace(0.1**0.5, 0.99**0.5, 4) ** 2
    acp = np.cumprod(1 - betas)
    prev = np.append(1.0, acp[:-1])
    ipr = noise
    with torch.no_grad():
        for t in (3, 2, 1, 0):
            x0 = model.denoise.resmlp(torch.cat([c, torch.full((1, 1), t / 40.0), ipr], 1))
            ipr = (betas[t] * np.sqrt(prev[t]) / (1 - acp[t])) * x0 + ((1 - prev[t]) * np.sqrt(1 - betas[t])
                                                                       / (1 - acp[t])) * ipr
        got = model.prior(x, noise)
    torch.testing.assert_close(got, ipr.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("task", ["deblur", "sr4", "sr2", "sr1", "inpaint"])
def test_split_equals_forward_and_noise_is_explicit(task):
    model = seeded("tiny", task, 0)
    io = methods().get("diffir").io("tiny", task)
    m = io.size_multiple
    x = torch.rand(1, io.in_channels, 2 * m, 3 * m)
    with torch.no_grad():
        whole = model(x)
        split = model.restore(x, model.prior(x))
        zeros = model(x, torch.zeros(1, 256))
        other = model(x, torch.randn(1, 256, generator=torch.Generator().manual_seed(1)))
    assert whole.shape == (1, 3, 2 * m * io.scale, 3 * m * io.scale)
    assert torch.equal(whole, split) and torch.equal(whole, zeros)
    assert not torch.equal(whole, other)
    with pytest.raises(ValueError, match="multiples"):
        model(torch.rand(1, io.in_channels, m + 1, m))


def test_nearest_upsample_equals_interpolate():
    x = torch.rand(2, 3, 5, 7)
    for scale in (1, 2, 4):
        assert torch.equal(nearest_upsample(x, scale), F.interpolate(x, scale_factor=scale, mode="nearest"))


def test_official_basicsr_checkpoint_loads_strictly_and_reproduces(tmp_path):
    spec = methods().get("diffir")
    source = seeded("tiny", "deblur", 3)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = source(x)
    ema = official_layout(source)
    params = {k: v + 1.0 for k, v in ema.items()}  # the non-EMA weights differ: params_ema must win
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params": params, "params_ema": ema}, path)
    target = seeded("tiny", "deblur", 4)
    spec.load_checkpoint(target, path)
    with torch.no_grad():
        assert torch.equal(target.eval()(x), expected)


def test_lightning_inpainting_checkpoint_loads(tmp_path):
    spec = methods().get("diffir")
    source = seeded("tiny", "inpaint", 5)
    sd = {f"generator.{k}": v for k, v in official_layout(source).items()}
    sd.update({"generatorS1.G.patch_embed.proj.weight": torch.zeros(1), "discriminator.conv.weight": torch.zeros(1)})
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, path)
    target = seeded("tiny", "inpaint", 6)
    spec.load_checkpoint(target, path)
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(target.eval()(x), source(x))


def test_checkpoint_mismatches_are_named(tmp_path):
    spec = methods().get("diffir")
    source = seeded("tiny", "deblur", 7)
    sd = official_layout(source)
    broken = dict(sd)
    broken["diffusion.model.resmlp.0.bias"] = broken["diffusion.model.resmlp.0.bias"] + 1
    torch.save({"params_ema": broken}, tmp_path / "dup.pth")
    with pytest.raises(CheckpointError, match="diffusion.model.resmlp.0.bias"):
        spec.load_checkpoint(seeded("tiny", "deblur", 0), tmp_path / "dup.pth")
    missing = {k: v for k, v in sd.items() if not k.startswith("G.latent.0.ffn")}
    torch.save({"params_ema": missing}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="G.latent.0.ffn"):
        spec.load_checkpoint(seeded("tiny", "deblur", 0), tmp_path / "missing.pth")
    schedule = dict(sd, **{"diffusion.betas": torch.linspace(0.1, 0.9, 4)})
    torch.save({"params_ema": schedule}, tmp_path / "schedule.pth")
    with pytest.raises(CheckpointError, match="betas"):
        spec.load_checkpoint(seeded("tiny", "deblur", 0), tmp_path / "schedule.pth")
    # A stage-1 (S1) checkpoint: CPEN_S1 is called E, not condition; strict loading names the keys.
    s1 = {("E." + k[len("condition."):] if k.startswith("condition.") else k): v
          for k, v in source.state_dict().items()}
    torch.save({"params": s1}, tmp_path / "s1.pth")
    with pytest.raises(CheckpointError, match="missing keys.*condition"):
        spec.load_checkpoint(seeded("tiny", "deblur", 0), tmp_path / "s1.pth")


def test_recipe_has_the_three_programs_with_global_ipr_tiling():
    model = edgeir.build_model("diffir", variant="tiny")
    from edgeir.recipe import RecipeOptions

    recipe = methods().get("diffir").recipe(model, RecipeOptions(variant="tiny", task="deblur"))
    assert [p.name for p in recipe.programs] == ["forward", "prior", "restore"]
    assert recipe.tile.global_state == "program:prior"
    restore = recipe.program("restore")
    assert [s.source for s in restore.inputs] == ["", "program:prior"]
    assert recipe.program("prior").outputs[0].shape == (1, 256)
    assert [s.source for s in recipe.program("forward").inputs] == ["", "zeros"]


def test_global_state_runs_the_prior_once_on_the_downscaled_photo():
    from edgeir.runtime.whole_photo import resize_area, tile_program_for, tile_runner

    image = {"name": "image", "kind": "image", "shape": [1, 3, 16, 16]}
    noise = {"name": "noise", "kind": "vector", "shape": [1, 4], "source": "zeros"}
    prior = {"name": "prior", "inputs": [image, noise],
             "outputs": [{"name": "ipr", "kind": "vector", "shape": [1, 4]}]}
    restore = {"name": "restore", "inputs": [image, {"name": "ipr", "kind": "vector", "shape": [1, 4],
                                                     "source": "program:prior"}],
               "outputs": [{"name": "restored", "kind": "image", "shape": [1, 3, 16, 16]}]}
    programs = [prior, restore]
    assert tile_program_for(programs, "program:prior") is restore
    calls = []

    def run(name, inputs):
        calls.append((name, [x.shape for x in inputs]))
        if name == "prior":
            assert not inputs[1].any()  # x_T: zeros
            return np.full((1, 4), float(inputs[0].mean()), dtype=np.float32)
        return inputs[0] + inputs[1][0, 0]

    photo = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
    run_tile = tile_runner(run, restore, programs, photo)
    tile = np.zeros((1, 3, 16, 16), dtype=np.float32)
    first, second = run_tile(tile), run_tile(tile)
    assert [c[0] for c in calls] == ["prior", "restore", "restore"]
    assert calls[0][1][0] == (1, 3, 16, 16)
    np.testing.assert_allclose(first, second)
    np.testing.assert_allclose(first.mean(), resize_area(photo, 16, 16).mean(), rtol=1e-5)
    np.testing.assert_allclose(resize_area(photo, 16, 16).mean(), photo.mean(), rtol=1e-2)


@pytest.mark.slow  # ExecuTorch DiffIR through the tiler; the global-IPR feed is unit-tested above
def test_artifact_restores_a_large_photo_with_one_global_ipr(exported, tmp_path):
    from edgeir.data.imageio import load_image, write_image
    from edgeir.runtime.reference import ReferenceRunner
    from edgeir.runtime.restore import default_program, run, tile_policy
    from edgeir.runtime.tiling import restore_tiled
    from edgeir.runtime.verify import reference_program
    from edgeir.runtime.whole_photo import tile_runner

    bundle = exported("diffir", "executorch")
    assert default_program(bundle)["name"] == "restore"
    photo = np.random.default_rng(1).random((72, 100, 3)).astype(np.float32)
    source = write_image(tmp_path / "in.png", photo, bits=8)
    out = run(bundle.path, source, tmp_path / "out.png")
    got = load_image(out).rgb.astype(np.float32) / 255.0
    # The eager reference, tiled the same way with its own global IPR.
    references = {name: ReferenceRunner(reference_program(bundle.manifest, name)) for name in ("prior", "restore")}
    policy = tile_policy(bundle, default_program(bundle))
    pixels = load_image(source).rgb
    run_tile = tile_runner(lambda name, inputs: references[name].run(inputs)[0], default_program(bundle),
                           bundle.programs, pixels)
    expected = np.clip(restore_tiled(pixels, run_tile, policy.tile_for(72, 100), policy.overlap, policy.multiple), 0, 1)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1.5 / 255


def test_gaussian_denoising_takes_the_deblurring_layout():
    assert config_for("paper", "denoise25") == config_for("paper", "deblur")
    assert config_for("mobile", "denoise50") == config_for("mobile", "deblur")


@pytest.mark.slow  # the NNCF engine's conv/linear-only placement is in the default run through AnyIR (test_quant)
def test_onnx_int8_qat_trains_with_finite_losses(tmp_path):
    """NNCF's default quantized DIRformer's LayerNorm arithmetic: the quantized sqrt(var + eps) of flat
    features rounded to zero and the first QAT step's loss was NaN; only weighted layers are quantized."""
    pytest.importorskip("nncf")
    # fine_tune raises on a non-finite loss, so the export itself is the check.
    bundle = edgeir.export("diffir", "onnx", variant="tiny", task="denoise25", quant="int8", qat_steps=2,
                           output=tmp_path)
    assert bundle.manifest["quantization"]["programs"]["restore"]["qat"]["steps"] == 2
