"""Image I/O for real photos: formats, bit depths, alpha, ICC, EXIF orientation, bad files."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from edgeir.data.imageio import load_image, orient, read_image, write_image
from edgeir.errors import ImageError

RNG = np.random.default_rng(0)


def srgb_icc():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_webp_round_trip_is_lossless(tmp_path):
    image = RNG.random((9, 13, 3)).astype(np.float32)
    write_image(tmp_path / "x.webp", image)
    assert np.abs(read_image(tmp_path / "x.webp") - image).max() <= 0.5 / 255 + 1e-6


def test_sixteen_bit_colour_tiff_keeps_precision_both_ways(tmp_path):
    import tifffile

    data = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="rgb")
    picture = load_image(tmp_path / "in.tif")
    assert picture.bits == 16 and np.array_equal(picture.rgb, data)
    write_image(tmp_path / "out.tif", picture.as_float(), bits=16)
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), data)


def test_sixteen_bit_colour_png_is_written_at_sixteen_bits(tmp_path):
    image = RNG.random((5, 6, 3)).astype(np.float32)
    alpha = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
    write_image(tmp_path / "x.png", image, bits=16, alpha=alpha, icc_profile=srgb_icc())
    raw = (tmp_path / "x.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 6  # IHDR bit depth and colour type RGBA
    with Image.open(tmp_path / "x.png") as png:
        png.load()
        assert png.size == (6, 5) and png.info.get("icc_profile") == srgb_icc()


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_rgba_alpha_passes_through_untouched(tmp_path, suffix):
    rgba = RNG.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / f"in{suffix}", **({"lossless": True} if suffix == ".webp" else {}))
    picture = load_image(tmp_path / f"in{suffix}")
    assert np.array_equal(picture.alpha, rgba[:, :, 3])
    write_image(tmp_path / f"out{suffix}", picture.as_float(), alpha=picture.alpha)
    back = load_image(tmp_path / f"out{suffix}")
    assert np.array_equal(back.alpha, rgba[:, :, 3])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    data = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(data).save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(load_image(tmp_path / "o.png").rgb, expected)
    assert orient(data, orientation).shape == expected.shape


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp"])
def test_icc_profile_is_kept(tmp_path, suffix):
    Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"in{suffix}",
                                                                         icc_profile=srgb_icc())
    picture = load_image(tmp_path / f"in{suffix}")
    assert picture.icc_profile == srgb_icc()
    write_image(tmp_path / f"out{suffix}", picture.as_float(), icc_profile=picture.icc_profile)
    assert load_image(tmp_path / f"out{suffix}").icc_profile == srgb_icc()


def test_cmyk_jpeg_is_read_as_rgb_without_its_cmyk_profile(tmp_path):
    Image.new("CMYK", (12, 10), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    picture = load_image(tmp_path / "cmyk.jpg")
    assert picture.rgb.shape == (10, 12, 3) and picture.icc_profile is None
    red = picture.rgb[5, 6].astype(int)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_one_pixel_and_grey_images(tmp_path):
    Image.fromarray(np.array([[77]], dtype=np.uint8)).save(tmp_path / "one.png")
    picture = load_image(tmp_path / "one.png")
    assert picture.grey and picture.rgb.shape == (1, 1, 3) and (picture.rgb == 77).all()
    write_image(tmp_path / "one_out.png", picture.as_float(), grey=True)
    with Image.open(tmp_path / "one_out.png") as image:
        assert image.mode == "L" and image.getpixel((0, 0)) == 77


@pytest.mark.parametrize("name, content, message", [
    ("zero.png", b"", "empty"),
    ("text.jpg", b"this is a text file, not a photo\n", "not an image"),
])
def test_bad_files_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(tmp_path / name)
    assert name in str(info.value)


def test_truncated_png_names_the_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.png.*(damaged|truncated)"):
        load_image(tmp_path / "cut.png")
