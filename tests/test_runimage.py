"""``edgeir run`` end to end: photos of any size through tiny AnyIR artifacts, tiled."""

import numpy as np
import pytest
from PIL import Image

import edgeir
from edgeir.bundle import Bundle
from edgeir.cli import main
from edgeir.data.imageio import load_image, write_image
from edgeir.data.photos import builtin_photos
from edgeir.evaluation.metrics import psnr
from edgeir.recipe import RecipeOptions
from edgeir.runtime.reference import ReferenceRunner
from edgeir.runtime.restore import restore, run, tile_policy


@pytest.fixture(scope="module")
def bundle(exported):
    return exported("anyir", "executorch")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 150x101 crop of astronaut (not a multiple of 8, several 64x64 tiles), with alpha."""
    rgb = builtin_photos(1)[0][1][100:201, 150:300]
    alpha = np.random.default_rng(0).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    write_image(path, rgb, alpha=alpha)
    return path


def reference_for(bundle):
    model = edgeir.build_model("anyir", variant="tiny")
    spec = edgeir.discovery.methods().get("anyir")
    recipe = spec.recipe(model, RecipeOptions(variant="tiny", task=bundle.manifest["task"], input_size=(64, 64)))
    return ReferenceRunner(recipe.programs[0].module, device=None)


@pytest.mark.target_executorch
def test_artifact_tiles_match_the_reference_tiled_the_same_way(bundle, photo, tmp_path):
    out = run(bundle.path, photo, tmp_path / "out.png")
    got, source = load_image(out), load_image(photo)
    assert got.size == source.size == (101, 150)
    assert np.array_equal(got.alpha, source.alpha)
    policy = tile_policy(Bundle.open(bundle.path), Bundle.open(bundle.path).program())
    assert policy.tile == (64, 64)
    expected = reference_for(bundle).run_tiled(source.rgb, policy.tile, policy.overlap, policy.multiple)
    assert psnr(got.as_float(), expected) > 45  # 8-bit output rounding dominates


@pytest.mark.target_executorch
def test_folder_in_folder_out_and_bad_photo_leaves_nothing(bundle, photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(photo).convert("L").save(folder / "grey.png")
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(folder / "dot.jpg")
    written = restore(bundle.path, folder, tmp_path / "out")
    assert sorted(p.name for p in written) == ["dot.jpg", "grey.png"]
    assert Image.open(tmp_path / "out" / "grey.png").mode == "L"
    assert Image.open(tmp_path / "out" / "dot.jpg").size == (1, 1)

    (tmp_path / "bad.jpg").write_text("not a photo")
    assert main(["run", str(bundle.path), str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "bad_out.png")]) == 2
    assert not (tmp_path / "bad_out.png").exists()
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.target_onnx
def test_dynamic_onnx_program_takes_the_whole_small_photo(exported, photo, tmp_path):
    onnx_bundle = exported("anyir", "onnx")
    opened = Bundle.open(onnx_bundle.path)
    policy = tile_policy(opened, opened.program())
    assert policy.tile is None and policy.tile_for(101, 150) == (104, 152)
    out = run(onnx_bundle.path, photo, tmp_path / "o.tif")
    assert load_image(out).size == (101, 150)
