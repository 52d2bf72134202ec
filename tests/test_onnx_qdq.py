"""Quantized weights of a QDQ model stored as integers: the same function, a quarter of the bytes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeir.targets.onnx.qdq import fold_weight_quantization, quantize_constant


def qdq_conv(per_channel: bool):
    """x -> Conv(x, DequantizeLinear(QuantizeLinear(W_float))) as the dynamo exporter writes a fake-quant weight."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    scale = (np.abs(weight).reshape(4, -1).max(axis=1) / 127).astype(np.float32)
    if not per_channel:
        scale = np.array(scale.max(), dtype=np.float32)
    zero = np.zeros(scale.shape, dtype=np.int8)
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(scale, "s"),
             numpy_helper.from_array(zero, "z")]
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"], axis=0),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], axis=0),
             helper.make_node("Conv", ["x", "wd"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


@pytest.mark.parametrize("per_channel", [True, False])
def test_folded_weights_compute_the_same_function(per_channel):
    model = qdq_conv(per_channel)
    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    before = run(model, x)
    assert fold_weight_quantization(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "Conv"]
    stored = {i.name: i for i in model.graph.initializer}
    assert "w" not in stored and stored["wq"].data_type == TensorProto.INT8
    np.testing.assert_array_equal(run(model, x), before)


def test_quantize_constant_rounds_half_to_even_and_saturates():
    value = np.array([0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0], dtype=np.float32)
    got = quantize_constant(value, np.array(1.0, np.float32), np.array(0, np.int8), axis=0)
    assert got.tolist() == [0, 2, 2, 0, 127, -128] and got.dtype == np.int8



def test_layer_output_quantizers_make_convolutions_fuse(tmp_path) -> None:
    """With an output quantizer after each conv, ONNX Runtime's optimiser turns DQ -> Conv -> Q into QLinearConv."""
    import torch
    from torch.nn.utils import parametrize

    from edgeir.quant.nncf_engine import quantize_layer_outputs

    torch.manual_seed(0)

    class FakeQuantWeight(torch.nn.Module):  # int8 per-channel symmetric weights, as NNCF's stripped model has
        def forward(self, w):
            scale = w.detach().abs().amax((1, 2, 3)).clamp_min(1e-8) / 127
            return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(w.shape[0], dtype=torch.int32),
                                                          0, -128, 127)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.b = torch.nn.Conv2d(8, 3, 3, padding=1)
            for conv in (self.a, self.b):
                parametrize.register_parametrization(conv, "weight", FakeQuantWeight())

        def forward(self, x):
            x = torch.fake_quantize_per_tensor_affine(x, 1 / 255, 0, 0, 255)
            y = torch.fake_quantize_per_tensor_affine(torch.relu(self.a(x)), 0.05, 0, 0, 255)
            return self.b(y)

    net = Net().eval()
    samples = [(torch.rand(1, 3, 16, 16),) for _ in range(4)]
    assert quantize_layer_outputs(net, samples) == 2
    x = samples[0][0]
    with torch.no_grad():
        out = net(x)
    assert len(np.unique(out.numpy())) <= 256  # the last layer's output is on a uint8 grid
    path = tmp_path / "m.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=True, external_data=False, verbose=False)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("QLinearConv") == 2, ops
    fused = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    step = float(out.max() - out.min()) / 255
    assert np.abs(fused - out.numpy()).max() <= 2 * step + 1e-6  # integer kernels agree with the fake-quant model


def test_a_layer_whose_output_nncf_quantizes_gets_no_second_quantizer() -> None:
    """NNCF quantizes a layer's output when the next layer reads it; another quantizer there would only requantize."""
    import torch

    from edgeir.quant.nncf_engine import quantize_layer_outputs

    class InputQuantizer(torch.nn.Module):  # what NNCF leaves on an op's output, after native_quantizers
        is_fake_quantize = True

        def forward(self, x):
            return torch.fake_quantize_per_tensor_affine(x, 0.02, 128, 0, 255)

    class QuantizedOutputConv(torch.nn.Conv2d):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.post_hook = InputQuantizer()

        def forward(self, x):
            return self.post_hook(super().forward(x))

    torch.manual_seed(0)
    net = torch.nn.Sequential(QuantizedOutputConv(3, 8, 3, padding=1), torch.nn.Conv2d(8, 3, 3, padding=1)).eval()
    samples = [(torch.rand(1, 3, 16, 16),) for _ in range(2)]
    assert quantize_layer_outputs(net, samples) == 1  # the second layer only
    with torch.no_grad():
        first = net[0](samples[0][0])
    np.testing.assert_allclose(first.numpy() / 0.02, np.round(first.numpy() / 0.02), atol=1e-4)  # NNCF's grid alone


def test_large_depthwise_convolutions_stay_float() -> None:
    """ONNX Runtime's integer depthwise kernel loses to its float one above 3x3; dense and 3x3 ones are quantized."""
    import torch

    from edgeir.quant.nncf_engine import ignored_operations

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = torch.nn.Conv2d(3, 8, 1)
            self.large = torch.nn.Conv2d(8, 8, 7, padding=3, groups=8)
            self.small = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.out = torch.nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x):
            return self.out(self.small(self.large(self.dense(x))))

    ignored = ignored_operations(Net().eval(), (torch.rand(1, 3, 16, 16),), ())
    assert [name for name in ignored if "conv2d" in name] == ["large/conv2d/0"], ignored


def test_calibration_hands_the_sample_through_and_finds_malloc_trim() -> None:
    """Each calibration forward first returns freed heap pages (glibc ``malloc_trim``): NNCF's small
    statistic tensors otherwise pin the heap above each forward's freed activations, and FlexIR's
    128x128 ONNX int8 export ran out of 24 GB (``bench/calibration_memory.py``)."""
    import platform

    import torch

    from edgeir.quant.nncf_engine import _glibc, release_freed_memory

    sample = (torch.rand(1, 3, 8, 8), torch.rand(1, 1))
    assert release_freed_memory(*sample) == sample
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert _glibc() is not None
