"""The tiler: exact reproduction with an identity program, seamless blending, SR scale, borders."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeir.runtime.tiling import dynamic_tile, pad_to, plan_tiles, restore_tiled


def identity(batch):
    return batch.copy()


def upscale(factor):
    def run(batch):
        return np.repeat(np.repeat(batch, factor, axis=2), factor, axis=3)

    return run


sizes = st.integers(min_value=1, max_value=150)
tiles = st.sampled_from([8, 16, 24, 32, 64])


@settings(max_examples=60, deadline=None)
@given(height=sizes, width=sizes, tile=tiles, tile_w=tiles, overlap=st.integers(0, 40),
       scale=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 2**16))
def test_identity_program_reproduces_the_input(height, width, tile, tile_w, overlap, scale, seed):
    image = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    out = restore_tiled(image, upscale(scale), (tile, tile_w), overlap, multiple=8, scale=scale)
    expected = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    assert out.shape == expected.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(height=sizes, width=sizes, tile=tiles, overlap=st.integers(0, 40), value=st.floats(0, 1, width=32))
def test_constant_image_stays_constant(height, width, tile, overlap, value):
    image = np.full((height, width, 3), value, dtype=np.float32)
    out = restore_tiled(image, identity, tile, overlap, multiple=8)
    assert np.abs(out - value).max() <= 1e-6


def test_every_output_pixel_is_covered_and_overlaps_are_at_least_requested():
    plan = plan_tiles(1000, 777, (256, 128), 32, multiple=8)
    for starts, tile, length in ((plan.rows, 256, 1000), (plan.cols, 128, 777)):
        assert starts[0] == 0 and starts[-1] + tile == length
        gaps = np.diff(starts)
        assert (tile - gaps >= 32).all()


def test_tiles_have_the_program_shape_and_uint8_is_scaled():
    seen = set()

    def run(batch):
        seen.add(batch.shape)
        assert batch.dtype == np.float32 and batch.max() <= 1.0
        return batch

    image = np.random.default_rng(0).integers(0, 256, (37, 91, 3), dtype=np.uint8)
    out = restore_tiled(image, run, (16, 32), 4, multiple=8)
    assert seen == {(1, 3, 16, 32)}
    np.testing.assert_allclose(out, image / 255.0, atol=1e-6)


def test_one_pixel_image_is_padded_and_cropped():
    image = np.array([[[0.25, 0.5, 0.75]]], dtype=np.float32)
    out = restore_tiled(image, upscale(2), 8, 2, multiple=8, scale=2)
    np.testing.assert_allclose(out, np.broadcast_to(image, (2, 2, 3)), atol=1e-7)


def test_padding_reflects_where_it_can():
    image = np.arange(5, dtype=np.float32).reshape(1, 5, 1).repeat(5, axis=0)
    assert pad_to(image, 5, 8)[0, :, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1]
    assert pad_to(image[:, :2], 5, 8).shape == (5, 8, 1)


def test_progress_counts_tiles():
    class Bar:
        total = None
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    restore_tiled(np.zeros((40, 40, 3), np.float32), identity, 16, 4, multiple=8, progress=bar)
    assert bar.total == bar.n == len(plan_tiles(40, 40, (16, 16), 4).rows) ** 2


def test_wrong_output_shape_is_an_error():
    with pytest.raises(ValueError, match="expected"):
        restore_tiled(np.zeros((20, 20, 3), np.float32), identity, 16, 4, multiple=8, scale=2)
    with pytest.raises(ValueError, match="multiple"):
        restore_tiled(np.zeros((20, 20, 3), np.float32), identity, 12, 4, multiple=8)


def test_dynamic_tile_uses_whole_image_or_capped_multiple():
    assert dynamic_tile(100, 61, 8, 8, 4096) == (104, 64)
    assert dynamic_tile(3000, 4000, 8, 8, 4096) == (512, 512)
    assert dynamic_tile(1, 1, 8, 8, 4096) == (8, 8)
    assert dynamic_tile(3000, 300, 8, 64, 256, preferred=512) == (256, 256)
