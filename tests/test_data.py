"""The training data pipeline: formats, split, crops, degradations, bad inputs."""

import logging

import numpy as np
import pytest

from edgeir.data.datasets import TrainingPairs, evaluation_pairs, image_files, load_images, split_names
from edgeir.data.degradations import check_task, degrade_image
from edgeir.data.imageio import write_image
from edgeir.errors import ImageError, UsageError

RNG = np.random.default_rng(0)


def _photo(h=40, w=48):
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=2)
    return np.clip(base + 0.05 * RNG.random((h, w, 3)), 0, 1).astype(np.float32)


@pytest.fixture()
def folder(tmp_path):
    """Six images in every supported kind: 8/16-bit, grey/RGB/RGBA, PNG/JPEG/TIFF, one in a subfolder."""
    write_image(tmp_path / "rgb8.png", _photo())
    write_image(tmp_path / "rgb16.png", _photo(), bits=16)
    write_image(tmp_path / "grey16.png", _photo(), bits=16, grey=True)
    write_image(tmp_path / "rgba.png", _photo(), alpha=np.full((40, 48), 128, np.uint8))
    write_image(tmp_path / "photo.jpg", _photo())
    write_image(tmp_path / "sub" / "deep16.tif", _photo(), bits=16)
    return tmp_path


def test_every_format_is_read_as_rgb(folder):
    images = load_images(folder)
    everything = images.train + images.evaluation
    assert sorted(i.name for i in everything) == sorted(str(p.relative_to(folder)) for p in image_files(folder))
    assert len(everything) == 6 and not images.skipped
    for image in everything:
        assert image.pixels.ndim == 3 and image.pixels.shape[2] == 3
        crop = image.crop(0, 0, 16, 16)
        assert crop.dtype == np.float32 and 0 <= crop.min() and crop.max() <= 1
    deep = [i for i in everything if i.name in ("rgb16.png", "grey16.png", "sub/deep16.tif")]
    assert any(i.pixels.dtype == np.uint16 for i in deep)
    grey = next(i for i in everything if i.name == "grey16.png")
    assert np.array_equal(grey.pixels[..., 0], grey.pixels[..., 2])


def test_split_is_by_image_deterministic_and_disjoint(folder):
    a, b = load_images(folder), load_images(folder)
    train, held = {i.name for i in a.train}, {i.name for i in a.evaluation}
    assert train and held and not train & held
    assert held == {i.name for i in b.evaluation}
    assert split_names(["c", "a", "b", "d", "e"]) == split_names(["e", "d", "c", "b", "a"])
    builtin = load_images(None)
    assert not {i.name for i in builtin.train} & {i.name for i in builtin.evaluation}
    pairs = evaluation_pairs("denoise25", source=builtin, crop=32, count=4)
    assert {p.name.split("#")[0] for p in pairs} <= {i.name for i in builtin.evaluation}


def test_crops_and_flips_are_deterministic_under_the_seed(folder):
    images = load_images(folder)
    one = TrainingPairs("denoise25", source=images, crop=24, batch=3, seed=7)
    again = TrainingPairs("denoise25", source=images, crop=24, batch=3, seed=7)
    other = TrainingPairs("denoise25", source=images, crop=24, batch=3, seed=8)
    d1, c1 = one.batch(5)
    d2, c2 = again.batch(5)
    assert d1.shape == c1.shape == (3, 3, 24, 24)
    assert np.array_equal(d1.numpy(), d2.numpy()) and np.array_equal(c1.numpy(), c2.numpy())
    assert not np.array_equal(c1.numpy(), other.batch(5)[1].numpy())
    assert not np.array_equal(c1.numpy(), one.batch(6)[1].numpy())
    first = next(iter(one))
    assert np.array_equal(first[1].numpy(), one.batch(0)[1].numpy())
    rank1 = TrainingPairs("denoise25", source=images, crop=24, batch=3, seed=7, rank=1)
    assert not np.array_equal(c1.numpy(), rank1.batch(5)[1].numpy())


def test_small_images_are_padded_to_the_crop(tmp_path):
    write_image(tmp_path / "a.png", _photo(10, 12))
    write_image(tmp_path / "b.png", _photo(10, 12))
    degraded, clean = TrainingPairs("denoise15", source=tmp_path, crop=32, batch=2).batch(0)
    assert clean.shape == (2, 3, 32, 32)


@pytest.fixture(scope="module")
def builtin():
    return load_images(None)


@pytest.mark.parametrize("task", ["denoise25", "jpeg10", "sr2", "sr3", "sr4", "deblur", "derain", "dehaze",
                                  "lowlight", "inpaint", "allinone3", "allinone5"])
def test_each_degradation_has_its_shape_and_range(task, builtin):
    clean = _photo(48, 48)
    scale = int(task[2:]) if task.startswith("sr") else 1
    channels = 4 if task == "inpaint" else 3
    out = degrade_image(clean, task, np.random.default_rng(1), in_channels=channels)
    assert out.dtype == np.float32
    assert out.shape == (48 // scale, 48 // scale, channels)
    assert out.min() >= 0 and out.max() <= 1
    again = degrade_image(clean, task, np.random.default_rng(1), in_channels=channels)
    assert np.array_equal(out, again)
    if scale == 1:
        assert np.abs(out[..., :3] - clean).mean() > 1e-3
    if task == "inpaint":
        mask = out[..., 3]
        assert set(np.unique(mask)) == {0.0, 1.0}
        assert np.all(out[..., :3][mask == 1] == 0)
    batch = TrainingPairs(task, source=builtin, crop=48, batch=2, scale=scale, in_channels=channels).batch(0)
    assert batch[0].shape == (2, channels, 48 // scale, 48 // scale) and batch[1].shape == (2, 3, 48, 48)


def test_task_and_model_mismatches_are_usage_errors():
    with pytest.raises(UsageError, match="no synthetic degradation for task 'sr1'"):
        check_task("sr1")
    with pytest.raises(UsageError, match="down-scales by 4"):
        TrainingPairs("sr4", crop=32)
    with pytest.raises(UsageError, match="multiple of the scale"):
        TrainingPairs("sr3", crop=32, scale=3)
    with pytest.raises(UsageError, match="takes 4"):
        degrade_image(_photo(), "denoise25", np.random.default_rng(0), in_channels=4)


def test_truncated_file_is_named_and_skipped_or_fails_when_strict(folder, caplog):
    good = (folder / "rgb8.png").read_bytes()
    (folder / "broken.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="edgeir.data.datasets"):
        images = load_images(folder)
    assert [name for name, _ in images.skipped] == [str(folder / "broken.png")]
    assert "broken.png" in caplog.text
    assert "broken.png" not in {i.name for i in images.train + images.evaluation}
    pairs = TrainingPairs("denoise25", source=folder, crop=16)
    assert pairs.skipped and "broken.png" in pairs.skipped[0][0]
    with pytest.raises(ImageError, match="broken.png"):
        load_images(folder, strict=True)


def test_empty_missing_and_unsplittable_sources_are_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="holds no image files"):
        load_images(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        load_images(tmp_path / "nope")
    write_image(tmp_path / "only.png", _photo())
    with pytest.raises(UsageError, match="at least 2 images"):
        load_images(tmp_path)
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(UsageError, match="1 skipped as unreadable"):
        load_images(tmp_path)


def test_verify_photos_are_degraded_for_the_synthetic_tasks_too():
    from edgeir.data.photos import degrade

    clean = _photo(32, 32)
    for task in ("deblur", "derain", "dehaze", "lowlight"):
        out, how = degrade(clean, task, seed=2)
        assert out.shape == clean.shape and "none" not in how
        assert np.abs(out - clean).mean() > 1e-3
    assert degrade(clean, "sr4")[1].startswith("none")
