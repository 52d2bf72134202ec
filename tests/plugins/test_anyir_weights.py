"""AnyIR checkpoints in the official layout load strictly, and the weights travel into bundles."""

import json

import numpy as np
import pytest
import torch

import edgeir
from edgeir.errors import CheckpointError


def _official_lightning_ckpt(model: torch.nn.Module, path):
    """A file in the layout of the authors' Lightning checkpoints (random values)."""
    torch.save({
        "epoch": 109,
        "global_step": 546700,
        "state_dict": {f"net.{k}": v.clone() for k, v in model.state_dict().items()},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}],
        "lr_schedulers": [{"last_epoch": 109}],
    }, path)


@pytest.fixture(scope="session")
def trained_like(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("weights")
    torch.manual_seed(7)
    model = edgeir.build_model("anyir", variant="tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path / "epoch=109-step=546700.ckpt"
    _official_lightning_ckpt(model, path)
    return model, path


def test_official_layout_loads_and_reproduces_outputs(trained_like):
    model, path = trained_like
    loaded = edgeir.build_model("anyir", variant="tiny", weights=path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_plain_state_dict_loads(tmp_path, trained_like):
    model, _ = trained_like
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    loaded = edgeir.build_model("anyir", variant="tiny", weights=tmp_path / "plain.pth")
    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_checkpoint_of_another_variant_names_the_mismatch(trained_like):
    _, path = trained_like
    with pytest.raises(CheckpointError, match="shape mismatches"):
        edgeir.build_model("anyir", variant="mobile", weights=path)


@pytest.fixture(scope="session")
def weighted_bundle(trained_like, tmp_path_factory):
    _, path = trained_like
    return edgeir.export("anyir", "onnx", variant="tiny", weights=path, output=tmp_path_factory.mktemp("out"))


def test_bundle_records_weights_and_verify_rebuilds_them(weighted_bundle):
    bundle = weighted_bundle
    weights = bundle.manifest["weights"]
    assert weights["source"] == "checkpoint" and len(weights["file_sha256"]) == 64
    report = edgeir.verify(bundle.path, photos=1)
    assert report.status == "passed"
    assert "accuracy_note" not in json.loads((bundle.path / "verify.json").read_text())


def test_run_writes_the_restored_image(trained_like, weighted_bundle, tmp_path):
    from edgeir.data.imageio import read_image, write_image
    from edgeir.data.photos import builtin_photos, fit_to

    _, path = trained_like
    bundle = weighted_bundle
    photo = fit_to(builtin_photos(1)[0][1], 48, 64)
    write_image(tmp_path / "in.png", photo)
    edgeir.run(bundle.path, tmp_path / "in.png", tmp_path / "restored.png")
    restored = read_image(tmp_path / "restored.png")
    assert restored.shape == photo.shape
    model = edgeir.build_model("anyir", variant="tiny", weights=path)
    with torch.no_grad():
        expected = model(torch.from_numpy(read_image(tmp_path / "in.png").transpose(2, 0, 1)[None].copy()))
    expected = expected[0].numpy().transpose(1, 2, 0).clip(0, 1)
    assert np.abs(restored - expected).max() <= 1 / 255 + 1e-4


def test_run_pads_an_image_outside_the_program_range(trained_like, weighted_bundle, tmp_path):
    """30x30 is not a multiple of 8: it is padded by reflection to a tile and cropped back."""
    from edgeir.data.imageio import read_image, write_image
    from edgeir.runtime.restore import tile_policy
    from edgeir.runtime.tiling import pad_to

    _, path = trained_like
    write_image(tmp_path / "odd.png", np.random.default_rng(0).random((30, 30, 3)))
    edgeir.run(weighted_bundle.path, tmp_path / "odd.png", tmp_path / "odd_out.png")
    restored = read_image(tmp_path / "odd_out.png")
    assert restored.shape == (30, 30, 3)
    model = edgeir.build_model("anyir", variant="tiny", weights=path)
    opened = edgeir.Bundle.open(weighted_bundle.path)
    height, width = tile_policy(opened, opened.program()).tile_for(30, 30)  # dynamic ONNX program: 32x32
    padded = pad_to(read_image(tmp_path / "odd.png"), height, width)
    with torch.no_grad():
        expected = model(torch.from_numpy(padded.transpose(2, 0, 1)[None].copy()))
    expected = expected[0].numpy().transpose(1, 2, 0)[:30, :30].clip(0, 1)
    assert np.abs(restored - expected).max() <= 1 / 255 + 1e-4
