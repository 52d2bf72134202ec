"""QDQ models with their weights stored as integers.

The dynamo exporter writes a fake-quantized weight as a float32 initializer followed by
QuantizeLinear and DequantizeLinear, so an "int8" model keeps every weight in float32 and is larger
than the float model. Quantizing those constant initializers ahead of time (what QuantizeLinear
computes: round half to even, add the zero point, saturate) stores them as int8 and leaves
DequantizeLinear to restore them at load time: the same function, a quarter of the weight bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def quantize_constant(value: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """QuantizeLinear (opset 13+) of a constant: per tensor, or per slice of ``axis`` for 1-D scales."""
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * value.ndim
        shape[axis] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    info = np.iinfo(zero_point.dtype)
    quantized = np.rint(value.astype(np.float32) / scale.astype(np.float32)) + zero_point.astype(np.int32)
    return np.clip(quantized, info.min, info.max).astype(zero_point.dtype)


def fold_weight_quantization(model: Any) -> int:
    """Replace each QuantizeLinear of a float initializer by its integer initializer, in place.

    Returns:
        How many weights are now stored as integers.
    """
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    folded, kept = 0, []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3 or not all(n in initializers for n in node.input):
            kept.append(node)
            continue
        axis = next((attr.i for attr in node.attribute if attr.name == "axis"), 1)
        if any(attr.name == "block_size" and attr.i for attr in node.attribute):
            kept.append(node)  # blocked quantization: left to the runtime
            continue
        value, scale, zero_point = (numpy_helper.to_array(initializers[name]) for name in node.input)
        quantized = quantize_constant(value, scale, zero_point, axis if axis >= 0 else axis + value.ndim)
        graph.initializer.append(numpy_helper.from_array(quantized, node.output[0]))
        folded += 1
        weight = node.input[0]
        uses[weight] -= 1
        if uses[weight] == 0:
            graph.initializer.remove(initializers.pop(weight))
    del graph.node[:]
    graph.node.extend(kept)
    return folded
