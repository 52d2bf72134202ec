"""Edits of a saved Core ML package's program, as a converter bug would make them (for the mutation tests).

Each edit changes the package on disk -- the protobuf program in ``Data/com.apple.CoreML/model.mlmodel``
or a weight or palette in ``weight.bin`` -- and returns the name of the MIL op whose result it changes; then
:func:`rehash` records the new file hashes so ``verify`` runs the edited package instead of refusing it
as modified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL = "Data/com.apple.CoreML/model.mlmodel"
WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"


def _load(package: Path):
    import coremltools as ct

    return ct.utils.load_spec(str(package))


def _save(package: Path, spec) -> None:
    (package / MODEL).write_bytes(spec.SerializeToString())


def _operations(spec, function: str = "main"):
    fn = spec.mlProgram.functions[function]
    return [op for block in fn.block_specializations.values() for op in block.operations]


def _name(op) -> str:
    """The MIL op's name (a proto op carries it as its ``name`` attribute)."""
    return op.attributes["name"].immediateValue.tensor.strings.values[0]


def _consts(ops) -> dict:
    return {op.outputs[0].name: op for op in ops if op.type == "const"}


def swap_transpose_perm(package: Path, function: str = "main") -> str:
    """Swap the last two entries of the first transpose whose last two permuted axes have equal size
    (so shapes still fit); returns the transpose op's name."""
    spec = _load(package)
    ops = _operations(spec, function)
    consts = _consts(ops)
    for op in ops:
        if op.type != "transpose":
            continue
        dims = [d.constant.size for d in op.outputs[0].type.tensorType.dimensions]
        perm_const = consts[op.inputs["perm"].arguments[0].name]
        values = perm_const.attributes["val"].immediateValue.tensor.ints.values
        if len(dims) >= 2 and dims[-1] == dims[-2] and values[-1] != values[-2]:
            values[-1], values[-2] = values[-2], values[-1]
            _save(package, spec)
            return _name(op)
    raise LookupError("no transpose whose last two axes have equal size")


def negate_conv_weight(package: Path, index: int = 0, function: str = "main") -> str:
    """Flip the sign of the weight of the ``index``-th conv (its float16/float32 blob in weight.bin)."""
    spec = _load(package)
    ops = _operations(spec, function)
    consts = _consts(ops)
    convs = [op for op in ops if op.type == "conv"]
    op = convs[index]
    _edit_float_blob(package, consts[op.inputs["weight"].arguments[0].name].attributes["val"].blobFileValue,
                     lambda values: -values)
    return _name(op)


def scale_palette(package: Path, factor: float, index: int = 0, function: str = "main") -> str:
    """Multiply the palette (``lut``, in weight.bin) of the ``index``-th ``constexpr_lut_to_dense`` op by
    ``factor``; returns the name of the compressed weight it decodes (the op's output)."""
    spec = _load(package)
    op = [o for o in _operations(spec, function) if o.type == "constexpr_lut_to_dense"][index]
    _edit_float_blob(package, op.attributes["lut"].blobFileValue, lambda values: values * factor)
    return op.outputs[0].name


def _edit_float_blob(package: Path, blob, edit) -> None:
    """Replace the float16/float32 values of one weight.bin blob by ``edit(values)`` (same dtype, same size)."""
    path = package / WEIGHTS
    raw = bytearray(path.read_bytes())
    header = np.frombuffer(bytes(raw[blob.offset:blob.offset + 64]), dtype=np.uint64)
    size, start = int(header[1]), int(header[2])  # after the uint32 sentinel and dtype: size, data offset
    dtype_code = int(np.frombuffer(bytes(raw[blob.offset + 4:blob.offset + 8]), dtype=np.uint32)[0])
    dtype = {1: np.float16, 2: np.float32}.get(dtype_code)  # blob dtypes: 1 float16, 2 float32
    if dtype is None:
        raise ValueError(f"weight blob of dtype code {dtype_code} is not float16/float32")
    data = np.frombuffer(bytes(raw[start:start + size]), dtype=dtype)
    raw[start:start + size] = np.asarray(edit(data), dtype=dtype).tobytes()
    path.write_bytes(bytes(raw))


def set_epsilon(package: Path, op_name: str, value: float, function: str = "main") -> str:
    """Set the epsilon of normalisation op ``op_name`` (its ``epsilon`` input, or the constant operand of an
    ``add`` that adds it) to ``value``."""
    spec = _load(package)
    ops = _operations(spec, function)
    consts = _consts(ops)
    op = next(o for o in ops if _name(o) == op_name)
    for arg in ("epsilon", "y", "x"):
        if arg in op.inputs and op.inputs[arg].arguments[0].name in consts:
            tensor = consts[op.inputs[arg].arguments[0].name].attributes["val"].immediateValue.tensor
            if tensor.HasField("bytes"):
                tensor.bytes.values = np.float16(value).tobytes()
            else:
                tensor.floats.values[0] = value
            _save(package, spec)
            return _name(op)
    raise LookupError(f"op {op_name} has no constant operand")


def normalisations(package: Path, function: str = "main") -> list[str]:
    """Names of the ``layer_norm`` / ``batch_norm`` / ``instance_norm`` ops, in program order."""
    spec = _load(package)
    return [_name(op) for op in _operations(spec, function)
            if op.type in ("layer_norm", "batch_norm", "instance_norm") and "epsilon" in op.inputs]


def epsilon_adds(package: Path, function: str = "main") -> list[str]:
    """``add`` ops whose constant operand is a scalar below 1e-3 (the epsilon of a normalisation)."""
    from edgeir.targets.coreml.mil import load_program

    program = load_program(package)
    found = []
    for op in program.functions[function].operations:
        if op.op_type != "add":
            continue
        for var in (op.inputs["x"], op.inputs["y"]):
            if var.val is not None and np.size(var.val) == 1 and 0 < abs(float(np.asarray(var.val))) < 1e-3:
                found.append(op.name)
    return found


def rehash(bundle_dir: Path) -> None:
    """Record the edited files' sha256 in the manifest (what a bundle written with the bug would hold)."""
    import json

    from edgeir.bundle import file_sha256

    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in manifest.get("files", {}):
        manifest["files"][name] = file_sha256(bundle_dir / name)
    from edgeir.bundle import write_json
    from edgeir.integrity import seal

    write_json(manifest_path, seal(manifest))
