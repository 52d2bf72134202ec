"""Where ONNX Runtime's integer convolution kernels pay: one convolution, float against its QDQ form.

Each case is a single-node ONNX model, ``Conv`` in float against ``Q -> DQ -> Conv(DQ(int8 W)) -> Q -> DQ``,
which ORT fuses into ``QLinearConv`` (the Q/DQ at the ends are included: in a network they stand
for the converts around the float ops between integer layers). Both are timed interleaved in one
process at 256x256, so the ratio holds on a noisy host. This is what decided that the ONNX int8
engine leaves depthwise convolutions larger than 3x3 float
(:func:`edgeir.quant.nncf_engine.large_depthwise`).

    OMP_NUM_THREADS=1 python bench/ort_depthwise_int8.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

#: (channels, kernel, depthwise)
CASES = ((16, 3, True), (32, 3, True), (32, 5, True), (32, 7, True), (32, 1, False), (32, 3, False))


def conv_model(channels: int, kernel: int, depthwise: bool, quantized: bool, size: int) -> bytes:
    """A one-convolution ONNX model (opset 17), float or in the QDQ form ORT fuses."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    groups = channels if depthwise else 1
    weight = rng.standard_normal((channels, channels // groups, kernel, kernel)).astype(np.float32) * 0.1
    initializers = [numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b")]
    conv = {"group": groups, "pads": [kernel // 2] * 4}
    if quantized:
        constants = {"xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8),
                     "wq": np.clip(np.round(weight / 0.001), -127, 127).astype(np.int8),
                     "ws": np.full(channels, 0.001, np.float32), "wz": np.zeros(channels, np.int8),
                     "ys": np.array(0.05, np.float32), "yz": np.array(128, np.uint8)}
        initializers += [numpy_helper.from_array(value, name) for name, value in constants.items()]
        nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
                 helper.make_node("Conv", ["xd", "wd", "b"], ["c"], **conv),
                 helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
                 helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    else:
        initializers.append(numpy_helper.from_array(weight, "w"))
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], **conv)]
    shape = [1, channels, size, size]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    print("| convolution | channels | kernel | fp32 ms | int8 (QLinearConv) ms | int8 / fp32 |")
    print("|---|---|---|---|---|---|")
    for channels, kernel, depthwise in CASES:
        sessions = []
        for quantized in (False, True):
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            model = conv_model(channels, kernel, depthwise, quantized, args.size)
            sessions.append(ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]))
        x = np.random.default_rng(1).random((1, channels, args.size, args.size), dtype=np.float32)
        times: list[list[float]] = [[], []]
        for _ in range(args.runs):
            for index, session in enumerate(sessions):
                start = time.perf_counter()
                session.run(None, {"x": x})
                times[index].append((time.perf_counter() - start) * 1000)
        fp32, int8 = (statistics.median(t[2:]) for t in times)
        print(f"| {'depthwise' if depthwise else 'dense'} | {channels} | {kernel}x{kernel} | {fp32:.2f} | {int8:.2f} | "
              f"{int8 / fp32:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
