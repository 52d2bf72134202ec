"""edgeir-mil kernels against expectations computed by hand from the MIL op definitions.

Each case builds a one-op ML Program with coremltools' builder (inputs as placeholders, so nothing is
folded at build time) and compares the interpreter's output with numbers worked out from the op's
definition in coremltools' ``mil/ops/defs`` -- never with the interpreter itself or with torch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from edgeir.targets.coreml.mil import MILProgram, message_for  # noqa: E402

IOS16, IOS17 = ct.target.iOS16, ct.target.iOS17


def run_one(build, *arrays: np.ndarray, opset=IOS17, dtype=types.fp32) -> np.ndarray:
    """Build ``main(x0, x1, ...) = build(x0, x1, ...)`` and interpret it on ``arrays``."""
    specs = [mb.TensorSpec(shape=a.shape, dtype=dtype if a.dtype.kind == "f" else types.int32) for a in arrays]

    # the builder reads the function's argument count, so *args will not do
    if len(arrays) == 1:
        def main(x0):
            return build(x0)
    else:
        def main(x0, x1):
            return build(x0, x1)
    program = mb.program(input_specs=specs, opset_version=opset)(main)

    interpreter = MILProgram(program)
    io = interpreter.io("main")
    feeds = dict(zip(io.inputs, arrays, strict=True))
    outputs = interpreter.run("main", feeds)
    values = [outputs[name].float().cpu().numpy() for name in io.outputs]
    return values[0] if len(values) == 1 else values


F = np.float32


def test_conv_custom_pad_sums_the_window():
    # ones(3x3) * ones(3x3) with one pixel of zero padding: corners see 4 ones, edges 6, the centre 9.
    out = run_one(lambda x: mb.conv(x=x, weight=np.ones((1, 1, 3, 3), F), pad_type="custom", pad=[1, 1, 1, 1]),
                  np.ones((1, 1, 3, 3), F))
    np.testing.assert_array_equal(out[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_conv_same_puts_the_odd_pad_after_and_same_lower_before():
    # x = [1, 2, 3, 4], kernel [1, 10] (width 2), stride 1: total pad 1. same: x padded [1,2,3,4,0]
    # -> 1+20, 2+30, 3+40, 4+0; same_lower: [0,1,2,3,4] -> 0+10, 1+20, 2+30, 3+40.
    x = np.array([[[[1, 2, 3, 4]]]], F)
    w = np.array([[[[1, 10]]]], F)
    same = run_one(lambda v: mb.conv(x=v, weight=w, pad_type="same"), x)
    lower = run_one(lambda v: mb.conv(x=v, weight=w, pad_type="same_lower"), x)
    np.testing.assert_array_equal(same.reshape(-1), [21, 32, 43, 4])
    np.testing.assert_array_equal(lower.reshape(-1), [10, 21, 32, 43])


def test_conv_groups_and_bias():
    # Depthwise (groups=2): channel c is scaled by (c + 1), then bias [10, 20] is added.
    x = np.array([[[[1.0]], [[2.0]]]], F)
    out = run_one(lambda v: mb.conv(x=v, weight=np.array([[[[1]]], [[[2]]]], F), bias=np.array([10, 20], F),
                                    groups=2), x)
    np.testing.assert_array_equal(out.reshape(-1), [11, 24])


def test_conv_transpose_stride_two_spreads_each_pixel():
    # weight [C_in=1, C_out=1, 2, 2] of ones, stride 2: each input pixel fills its own 2x2 block.
    x = np.array([[[[1, 2], [3, 4]]]], F)
    out = run_one(lambda v: mb.conv_transpose(x=v, weight=np.ones((1, 1, 2, 2), F), strides=[2, 2]), x)
    np.testing.assert_array_equal(out[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


def test_conv_transpose_pad_crops_the_full_output():
    # Full output of a 3-tap ones kernel on [1, 2] is [1, 3, 3, 2]; pad [1, 1] crops one each side: [3, 3].
    x = np.array([[[1, 2]]], F)
    out = run_one(lambda v: mb.conv_transpose(x=v, weight=np.ones((1, 1, 3), F), pad_type="custom", pad=[1, 1]), x)
    np.testing.assert_array_equal(out.reshape(-1), [3, 3])


def test_matmul_transpose_y_and_linear():
    x, y = np.array([[1, 2]], F), np.array([[3, 4]], F)
    assert run_one(lambda a, b: mb.matmul(x=a, y=b, transpose_y=True), x, y).item() == 11.0
    out = run_one(lambda a: mb.linear(x=a, weight=np.array([[1, 0], [0, 1], [1, 1]], F), bias=np.array([0, 0, 1], F)),
                  x)
    np.testing.assert_array_equal(out.reshape(-1), [1, 2, 4])


def test_layer_norm_adds_epsilon_to_the_population_variance():
    # x = [1, 2, 3, 4]: mean 2.5, population variance 1.25; epsilon 0.75 makes the denominator sqrt(2) = 1.4142.
    x = np.array([[1, 2, 3, 4]], F)
    out = run_one(lambda v: mb.layer_norm(x=v, axes=[-1], epsilon=F(0.75), gamma=np.full(4, 2, F),
                                          beta=np.ones(4, F)), x)
    expected = (np.array([1, 2, 3, 4]) - 2.5) / math.sqrt(2.0) * 2 + 1
    np.testing.assert_allclose(out.reshape(-1), expected, rtol=1e-6)


def test_batch_norm_and_instance_norm():
    x = np.array([[[[1.0, 3.0]], [[2.0, 6.0]]]], F)  # N=1, C=2, H=1, W=2
    out = run_one(lambda v: mb.batch_norm(x=v, mean=np.array([1, 2], F), variance=np.array([3, 15], F),
                                          epsilon=F(1.0)), x)
    # channel 0: (x - 1) / 2, channel 1: (x - 2) / 4
    np.testing.assert_allclose(out.reshape(-1), [0, 1, 0, 1], rtol=1e-6)
    out = run_one(lambda v: mb.instance_norm(x=v, epsilon=F(0.0)), x)
    # each channel of two values normalises to [-1, 1]
    np.testing.assert_allclose(out.reshape(-1), [-1, 1, -1, 1], rtol=1e-6)


def test_reductions_and_keep_dims():
    x = np.array([[3, 4], [6, 8]], F)
    np.testing.assert_array_equal(run_one(lambda v: mb.reduce_l2_norm(x=v, axes=[1]), x), [5, 10])
    kept = run_one(lambda v: mb.reduce_mean(x=v, axes=[0], keep_dims=True), x)
    assert kept.shape == (1, 2)
    np.testing.assert_array_equal(kept, [[4.5, 6]])
    assert run_one(lambda v: mb.reduce_sum(x=v), x).item() == 21.0  # no axes: every axis
    np.testing.assert_array_equal(run_one(lambda v: mb.reduce_max(x=v, axes=[-1]), x), [4, 8])


def test_softmax_and_unary_epsilons():
    out = run_one(lambda v: mb.softmax(x=v, axis=-1), np.array([0, math.log(3)], F))
    np.testing.assert_allclose(out, [0.25, 0.75], rtol=1e-6)
    x = np.array([3.0], F)
    assert run_one(lambda v: mb.rsqrt(x=v, epsilon=F(1.0)), x).item() == pytest.approx(0.5)  # 1/sqrt(3+1)
    assert run_one(lambda v: mb.inverse(x=v, epsilon=F(1.0)), x).item() == pytest.approx(0.25)  # 1/(3+1)
    assert run_one(lambda v: mb.log(x=v, epsilon=F(1.0)), x).item() == pytest.approx(math.log(4))


def test_gelu_modes_at_one():
    x = np.array([1.0], F)
    exact = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    tanh = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * (1 + 0.044715)))
    sigm = 1 / (1 + math.exp(-1.702))
    assert run_one(lambda v: mb.gelu(x=v), x).item() == pytest.approx(exact, rel=1e-6)
    assert run_one(lambda v: mb.gelu(x=v, mode="TANH_APPROXIMATION"), x).item() == pytest.approx(tanh, rel=1e-6)
    assert run_one(lambda v: mb.gelu(x=v, mode="SIGMOID_APPROXIMATION"), x).item() == pytest.approx(sigm, rel=1e-6)


def test_elementwise_broadcast_and_activations():
    x, y = np.array([[1.0], [2.0]], F), np.array([10.0, 20.0, 30.0], F)
    np.testing.assert_array_equal(run_one(lambda a, b: mb.add(x=a, y=b), x, y), [[11, 21, 31], [12, 22, 32]])
    np.testing.assert_array_equal(run_one(lambda a, b: mb.real_div(x=a, y=b), np.array([3.0], F),
                                          np.array([2.0], F)), [1.5])
    np.testing.assert_array_equal(run_one(lambda a, b: mb.maximum(x=a, y=b), np.array([1.0, 5.0], F),
                                          np.array([3.0, 2.0], F)), [3, 5])
    np.testing.assert_array_equal(run_one(lambda a, b: mb.pow(x=a, y=b), np.array([2.0], F),
                                          np.array([3.0], F)), [8])
    v = np.array([-1.0, 0.0, 2.0], F)
    np.testing.assert_array_equal(run_one(lambda a: mb.relu(x=a), v), [0, 0, 2])
    np.testing.assert_allclose(run_one(lambda a: mb.sigmoid(x=a), v), 1 / (1 + np.exp(-v.astype(np.float64))),
                               rtol=1e-6)
    np.testing.assert_allclose(run_one(lambda a: mb.silu(x=a), v), v / (1 + np.exp(-v.astype(np.float64))), rtol=1e-6)
    np.testing.assert_allclose(run_one(lambda a: mb.softplus(x=a), v), np.log1p(np.exp(v.astype(np.float64))),
                               rtol=1e-6)
    np.testing.assert_array_equal(run_one(lambda a: mb.clip(x=a, alpha=F(-0.5), beta=F(1.0)), v), [-0.5, 0, 1])


def test_reshape_transpose_concat_split():
    x = np.arange(6, dtype=F).reshape(1, 2, 3)
    # 0 copies x's dimension at that position, -1 is inferred
    assert run_one(lambda v: mb.reshape(x=v, shape=[0, -1]), x).shape == (1, 6)
    out = run_one(lambda v: mb.transpose(x=v, perm=[2, 0, 1]), x)
    assert out.shape == (3, 1, 2) and out[2, 0, 1] == x[0, 1, 2]
    a, b = np.array([1, 2], F), np.array([3, 4], F)
    np.testing.assert_array_equal(run_one(lambda p, q: mb.concat(values=[p, q], axis=0, interleave=True), a, b),
                                  [1, 3, 2, 4])
    np.testing.assert_array_equal(run_one(lambda p, q: mb.concat(values=[p, q], axis=0), a, b), [1, 2, 3, 4])
    parts = run_one(lambda v: mb.split(x=v, split_sizes=[1, 2], axis=-1), x)
    np.testing.assert_array_equal(parts[0].reshape(-1), [0, 3])
    np.testing.assert_array_equal(parts[1].reshape(-1), [1, 2, 4, 5])


def test_slices():
    x = np.arange(10, dtype=F)
    out = run_one(lambda v: mb.slice_by_index(x=v, begin=[8], end=[1], stride=[-3]), x)
    np.testing.assert_array_equal(out, [8, 5, 2])  # numpy x[8:1:-3]
    out = run_one(lambda v: mb.slice_by_index(x=v, begin=[5], end=[0], end_mask=[True]), x)
    np.testing.assert_array_equal(out, [5, 6, 7, 8, 9])  # end ignored
    m = np.arange(6, dtype=F).reshape(2, 3)
    out = run_one(lambda v: mb.slice_by_index(x=v, begin=[1, 0], end=[2, 3], squeeze_mask=[True, False]), m)
    np.testing.assert_array_equal(out, [3, 4, 5])  # row 1, its axis dropped
    out = run_one(lambda v: mb.slice_by_size(x=v, begin=[0, 1], size=[-1, 2]), m)
    np.testing.assert_array_equal(out, [[1, 2], [4, 5]])


def test_tile_squeeze_expand_dims_gather():
    x = np.array([[1, 2]], F)
    np.testing.assert_array_equal(run_one(lambda v: mb.tile(x=v, reps=[2, 2]), x), [[1, 2, 1, 2], [1, 2, 1, 2]])
    assert run_one(lambda v: mb.squeeze(x=v), x).shape == (2,)
    assert run_one(lambda v: mb.expand_dims(x=v, axes=[-1]), x).shape == (1, 2, 1)
    table = np.array([[1, 2], [3, 4], [5, 6]], F)
    out = run_one(lambda v, i: mb.gather(x=v, indices=i, axis=0), table, np.array([2, -3], np.int32))
    np.testing.assert_array_equal(out, [[5, 6], [1, 2]])  # -3 counts from the end (iOS 17)
    out = run_one(lambda v, i: mb.gather_along_axis(x=v, indices=i, axis=1), table,
                  np.array([[1], [0], [1]], np.int32))
    np.testing.assert_array_equal(out.reshape(-1), [2, 3, 6])


def test_pixel_shuffle_and_unshuffle():
    # channels c*4 + i*2 + j go to pixel (i, j): channel values 0..3 land as [[0, 1], [2, 3]].
    x = np.arange(4, dtype=F).reshape(1, 4, 1, 1)
    out = run_one(lambda v: mb.pixel_shuffle(x=v, upscale_factor=2), x)
    np.testing.assert_array_equal(out[0, 0], [[0, 1], [2, 3]])
    back = run_one(lambda v: mb.pixel_unshuffle(x=v, downscale_factor=np.uint32(2)),
                   np.array([[[[0, 1], [2, 3]]]], F), opset=IOS16)
    np.testing.assert_array_equal(back.reshape(-1), [0, 1, 2, 3])


def test_resizing_follows_the_definition_grids():
    x = np.array([[[[0.0, 1.0]]]], F)  # values equal their coordinates: outputs are the sampling grid
    near = run_one(lambda v: mb.upsample_nearest_neighbor(x=v, scale_factor_height=1, scale_factor_width=2), x)
    np.testing.assert_array_equal(near.reshape(-1), [0, 0, 1, 1])
    aligned = run_one(lambda v: mb.upsample_bilinear(x=v, scale_factor_height=1.0, scale_factor_width=2.0,
                                                     align_corners=True), x)
    np.testing.assert_allclose(aligned.reshape(-1), [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    half = run_one(lambda v: mb.upsample_bilinear(x=v, scale_factor_height=1.0, scale_factor_width=2.0,
                                                  align_corners=False), x)
    np.testing.assert_allclose(half.reshape(-1), [0, 0.25, 0.75, 1], rtol=1e-6)
    # The definition's own worked example, Xin = 2, Xout = 5.
    for mode, grid in (("UNALIGN_CORNERS", [0, 0.1, 0.5, 0.9, 1]), ("STRICT_ALIGN_CORNERS", [0, 0.25, 0.5, 0.75, 1]),
                       ("DEFAULT", [0, 0.4, 0.8, 1, 1]), ("OFFSET_CORNERS", [0.1, 0.3, 0.5, 0.7, 0.9])):
        out = run_one(lambda v, m=mode: mb.resize_bilinear(x=v, target_size_height=1, target_size_width=5,
                                                           sampling_mode=m), x)
        np.testing.assert_allclose(out.reshape(-1), grid, rtol=1e-5, atol=1e-6, err_msg=mode)


def test_pad_modes():
    x = np.array([[1, 2, 3]], F)
    np.testing.assert_array_equal(run_one(lambda v: mb.pad(x=v, pad=[2, 1], mode="reflect"), x), [[3, 2, 1, 2, 3, 2]])
    np.testing.assert_array_equal(run_one(lambda v: mb.pad(x=v, pad=[1, 2], mode="replicate"), x),
                                  [[1, 1, 2, 3, 3, 3]])
    np.testing.assert_array_equal(run_one(lambda v: mb.pad(x=v, pad=[1, 0], constant_val=F(7)), x), [[7, 1, 2, 3]])


def test_cast_truncates_and_fp16_outputs_are_rounded():
    out = run_one(lambda v: mb.cast(x=v, dtype="int32"), np.array([2.7, -2.7], F))
    np.testing.assert_array_equal(out, [2, -2])
    out = run_one(lambda v: mb.cast(x=v, dtype="fp16"), np.array([1 / 3], F))
    assert out.item() == float(np.float16(1 / 3)) != float(np.float32(1 / 3))  # stored as float16
    # an fp16 program's ops store float16: 2049 is not representable (float16 spacing 2 above 2048)
    out = run_one(lambda v: mb.add(x=v, y=np.float16(1)), np.array([2048], np.float16), dtype=types.fp16)
    assert out.item() == 2048.0


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -300.0], F)
    out = run_one(lambda v: mb.quantize(input=v, scale=F(1.0), zero_point=np.int8(0), output_dtype="int8"), x)
    np.testing.assert_array_equal(out, [0, 2, 2, -128])
    out = run_one(lambda v: mb.quantize(input=v, scale=F(0.5), zero_point=np.uint8(10), output_dtype="uint8"),
                  np.array([1.0, -10.0], F))
    np.testing.assert_array_equal(out, [12, 0])  # 1/0.5 + 10; -20 + 10 saturates at 0


def test_dequantize_and_constexpr_affine_per_axis():
    def build(v):
        q = mb.quantize(input=v, scale=F(1.0), zero_point=np.int8(0), output_dtype="int8")
        return mb.dequantize(input=q, scale=F(0.5), zero_point=np.int8(2))

    np.testing.assert_array_equal(run_one(build, np.array([10.0], F)), [4.0])  # (10 - 2) * 0.5
    weight = np.array([[2, 4], [6, 8]], np.int8)

    def affine(v):
        w = mb.constexpr_affine_dequantize(quantized_data=weight, zero_point=np.array([0, 2], np.int8),
                                           scale=np.array([1.0, 0.5], F), axis=0)
        return mb.mul(x=v, y=w)

    out = run_one(affine, np.ones((2, 2), F), opset=IOS16)
    np.testing.assert_array_equal(out, [[2, 4], [2, 3]])  # row 1: (6-2)*0.5, (8-2)*0.5


def test_constexpr_lut_to_dense_unpacks_lsb_first():
    # 2-bit indices [1, 2, 3, 0] pack LSB first into one byte: 1 | 2<<2 | 3<<4 | 0<<6 = 57.
    lut = np.array([10, 20, 30, 40], F)

    def build(v):
        w = mb.constexpr_lut_to_dense(indices=np.array([57], np.uint8), lut=lut, shape=np.array([4], np.uint32))
        return mb.add(x=v, y=w)

    out = run_one(build, np.zeros(4, F), opset=IOS16)
    np.testing.assert_array_equal(out, [20, 30, 40, 10])


def test_an_op_without_a_kernel_is_named_not_guessed():
    @mb.program(input_specs=[mb.TensorSpec(shape=(4,))], opset_version=IOS17)
    def program(x):
        return mb.topk(x=x, k=2)

    interpreter = MILProgram(program)
    assert interpreter.unsupported() == ["topk"]
    assert message_for(interpreter.unsupported()) == "op `topk` is not interpreted; numbers not checked"
    from edgeir.targets.coreml.mil import NotInterpreted

    with pytest.raises(NotInterpreted, match="op `topk` is not interpreted"):
        interpreter.run("main", {"x": np.zeros(4, F)})


def test_fill_like_takes_the_reference_shape():
    out = run_one(lambda v: mb.fill_like(ref_tensor=v, value=F(2.5)), np.zeros((2, 3), F), opset=IOS16)
    np.testing.assert_array_equal(out, np.full((2, 3), 2.5))
