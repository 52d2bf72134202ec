"""Profiler files as devices write them, generated for the import tests (no phone needed)."""

from __future__ import annotations

from pathlib import Path


def write_etdump(path: Path, runs_ms=(4.0, 5.0, 6.0), method: str = "forward") -> Path:
    """An ETDump like a device build writes: per run, one ``Method::execute`` event, two operator calls and a
    delegate call (times in ns)."""
    from executorch.devtools.etdump import schema_flatcc as flatcc
    from executorch.devtools.etdump.serialize import serialize_to_etdump_flatcc

    def event(name, instruction, start, end, delegate_id=-1):
        return flatcc.Event(allocation_event=None, debug_event=None, profile_event=flatcc.ProfileEvent(
            name=name, chain_index=0, instruction_id=instruction, delegate_debug_id_int=delegate_id,
            delegate_debug_id_str="", delegate_debug_metadata=None, start_time=start, end_time=end))

    runs = []
    clock = 0
    for duration in runs_ms:
        ns = int(duration * 1e6)
        events = [event("Method::execute", -1, clock, clock + ns),
                  event("native_call_convolution.out", 0, clock, clock + ns // 2),
                  event("DELEGATE_CALL", 1, clock + ns // 2, clock + ns * 3 // 4),
                  event("native_call_add.out", 2, clock + ns * 3 // 4, clock + ns)]
        runs.append(flatcc.RunData(name=method, bundled_input_index=-1, allocators=[], events=events))
        clock += ns
    data = serialize_to_etdump_flatcc(flatcc.ETDumpFlatCC(version=0, run_data=runs))
    # The runtime writes size-prefixed buffers; the Python serializer does not add the prefix.
    path.write_bytes(len(data).to_bytes(4, "little") + data)
    return path


def write_ort_profile(directory: Path, runs: int = 3) -> Path:
    """Run a two-node ONNX model with ONNX Runtime's profiler on and return the JSON it writes."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 3, 3], np.ones(81, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["out"])],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(directory / "ort")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    for _ in range(runs):
        session.run(None, {"image": x})
    return Path(session.end_profiling())
