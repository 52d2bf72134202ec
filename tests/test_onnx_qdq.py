"""Quantized weights of a QDQ model stored as integers: the same function, a quarter of the bytes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeir.targets.onnx_qdq import fold_weight_quantization, quantize_constant
from onnx import TensorProto, helper, numpy_helper


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
