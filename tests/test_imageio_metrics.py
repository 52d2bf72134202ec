import numpy as np
import pytest
from PIL import Image

from edgeir.data.imageio import read_image, write_image
from edgeir.data.photos import builtin_photos, degrade, fit_to
from edgeir.errors import ImageError
from edgeir.evaluation.metrics import PSNR_CEILING_DB, psnr


def test_psnr_known_value_and_ceiling():
    a = np.zeros((4, 4, 3))
    assert psnr(a, a) == PSNR_CEILING_DB
    assert psnr(a, a + 0.1) == pytest.approx(20.0)


def test_read_write_round_trip(tmp_path):
    image = np.random.default_rng(0).random((8, 10, 3)).astype(np.float32)
    write_image(tmp_path / "x.png", image)
    back = read_image(tmp_path / "x.png")
    assert back.shape == (8, 10, 3)
    assert np.abs(back - image).max() <= 0.5 / 255 + 1e-6


def test_sixteen_bit_grey_keeps_precision(tmp_path):
    data = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(data).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.shape == (8, 8, 3)
    assert image[0, 1, 0] == pytest.approx(1000 / 65535, abs=1e-6)


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"hello, not an image", "not an image")])
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        read_image(path)
    assert "photo.jpg" in str(info.value)


def test_truncated_png(tmp_path):
    write_image(tmp_path / "full.png", np.random.default_rng(1).random((64, 64, 3)))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(ImageError, match="unknown image extension"):
        write_image(tmp_path / "out.notaformat", np.zeros((4, 4, 3)))
    assert list(tmp_path.iterdir()) == []


def test_builtin_photos_are_real_colour_images():
    photos = builtin_photos(2)
    assert [name for name, _ in photos] == ["astronaut", "chelsea"]
    for _, image in photos:
        assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0.1


def test_fit_to_crops_and_pads():
    image = np.random.default_rng(0).random((20, 30, 3))
    assert fit_to(image, 16, 16).shape == (16, 16, 3)
    assert fit_to(image, 24, 40).shape == (24, 40, 3)


def test_degrade_noise_is_seeded_and_has_the_sigma():
    clean = np.full((64, 64, 3), 0.5, dtype=np.float32)
    noisy, how = degrade(clean, "denoise25", seed=3)
    again, _ = degrade(clean, "denoise25", seed=3)
    assert np.array_equal(noisy, again)
    assert (noisy - clean).std() == pytest.approx(25 / 255, rel=0.05)
    assert "25" in how
