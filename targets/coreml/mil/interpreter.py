"""Executes a saved Core ML ML Program op by op with torch kernels (``edgeir-mil``).

Core ML predictions need macOS, so on other hosts a package would never be run before it
ships. This module reads the program the package holds -- coremltools' own MIL protobuf loader
(``coremltools.converters.mil.frontend.milproto.load``) over the package's ``model.mlmodel``,
with constants from its ``weight.bin`` -- and evaluates every operation of a function with the
kernels in :mod:`edgeir.targets.coreml.mil.ops`, each following one definition of coremltools'
``mil/ops/defs``.

Numerics: every float op computes in float32 and its output is rounded to the dtype the program
declares for it (float16 in an fp16 program), so a float16 program stores float16 tensors between
ops as the device does. What this checks is the conversion and the program's arithmetic, not
Apple's kernels (their accumulation order, fused ops, Neural Engine precision).

An op without a kernel is never guessed: :meth:`MILProgram.unsupported` names it before anything
runs, and :meth:`MILProgram.run` raises :class:`NotInterpreted`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeir.targets.coreml.mil.ops import KERNELS

WEIGHTS_DIR = "Data/com.apple.CoreML/weights"
RUNTIME = "edgeir-mil"

# Observer called after each op: (op, output tensors).
Observer = Callable[[Any, list[Any]], None]


class NotInterpreted(RuntimeError):
    """The program holds an op this interpreter has no kernel for."""


def message_for(op_types: Iterable[str]) -> str:
    """The one-line result for ops without a kernel: their numbers are not checked, never guessed."""
    names = sorted(set(op_types))
    if len(names) == 1:
        return f"op `{names[0]}` is not interpreted; numbers not checked"
    return "ops " + ", ".join(f"`{n}`" for n in names) + " are not interpreted; numbers not checked"


def load_program(package: str | Path):
    """The pymil Program saved in ``package`` (an ``.mlpackage``), weights read from its ``weight.bin``."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    package = str(package)
    spec = ct.utils.load_spec(package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(spec, spec.specificationVersion, file_weights_dir=str(Path(package) / WEIGHTS_DIR))


def torch_dtype(mil_dtype) -> torch.dtype | None:
    """The torch dtype that stores a MIL dtype (sub-byte integers in 8 bits); None for non-tensors."""
    from coremltools.converters.mil.mil import types

    name = types.builtin_to_string(mil_dtype) if mil_dtype is not None else None
    return _DTYPES.get(name)


_DTYPES = {
    "fp16": torch.float16, "fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16,
    "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16, "uint16": torch.int32,
    "int32": torch.int32, "uint32": torch.int64, "int64": torch.int64, "bool": torch.bool,
    "int4": torch.int8, "uint4": torch.uint8, "uint1": torch.uint8, "uint2": torch.uint8, "uint3": torch.uint8,
    "uint6": torch.uint8,
}


def _as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    array = np.asarray(value)
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    elif array.dtype == np.uint32:
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


class OpArgs:
    """An op's inputs as its kernel sees them.

    ``tensor(name)`` gives a torch tensor (floats upcast to float32: kernels compute in float32);
    ``value(name)`` the constant as numpy/python (shapes, axes, modes); ``has(name)`` whether an
    optional input is given.
    """

    def __init__(self, op, env: dict[str, Any], device: torch.device) -> None:
        self.op = op
        self._env = env
        self.device = device

    def has(self, name: str) -> bool:
        return self.op.inputs.get(name) is not None

    def _lookup(self, var) -> Any:
        if var.name in self._env:
            return self._env[var.name]
        if var.val is not None:  # a value the loader knows (a const of an outer block)
            return var.val
        raise KeyError(f"input `{var.name}` of op `{self.op.name}` was not computed")

    def raw(self, name: str) -> Any:
        """The stored value of input ``name`` (tensor or python constant), without conversion."""
        return self._lookup(self.op.inputs[name])

    def tensor(self, name: str, default: Any = None) -> torch.Tensor:
        if not self.has(name):
            if default is None:
                raise KeyError(f"op `{self.op.name}` ({self.op.op_type}) has no input `{name}`")
            return torch.as_tensor(default, device=self.device)
        return _compute(self._lookup(self.op.inputs[name]), self.device)

    def tensors(self, name: str) -> list[torch.Tensor]:
        return [_compute(self._lookup(v), self.device) for v in self.op.inputs[name]]

    def value(self, name: str, default: Any = None) -> Any:
        if not self.has(name):
            return default
        found = self._lookup(self.op.inputs[name])
        if isinstance(found, torch.Tensor):
            found = found.cpu().numpy()
        if isinstance(found, np.ndarray) and found.ndim == 0:
            return found.item()
        if isinstance(found, np.generic):
            return found.item()
        return found

    def ints(self, name: str, default: Any = None) -> list[int] | None:
        found = self.value(name, default)
        if found is None:
            return None
        return [int(v) for v in np.asarray(found).reshape(-1)]

    def output_dtype(self, index: int = 0) -> torch.dtype | None:
        return torch_dtype(self.op.outputs[index].dtype)


def _compute(value: Any, device: torch.device) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else _as_tensor(value, device)
    if tensor.is_floating_point() and tensor.dtype != torch.float32:
        return tensor.float()
    return tensor


@dataclass(frozen=True)
class FunctionIO:
    """Names and dtypes of one function's inputs and outputs."""

    inputs: dict[str, torch.dtype | None]
    outputs: list[str]


class MILProgram:
    """A saved ML Program, ready to interpret: ``run(function, feeds) -> {output name: tensor}``."""

    def __init__(self, package, device: torch.device | str | None = None) -> None:
        """``package``: an ``.mlpackage`` path, or a pymil Program already in memory (tests build them)."""
        if isinstance(package, (str, Path)):
            self.package: Path | None = Path(package)
            self.program = load_program(package)
        else:
            self.package, self.program = None, package
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self._consts: dict[str, dict[str, torch.Tensor | Any]] = {}

    @property
    def functions(self) -> list[str]:
        return list(self.program.functions)

    def io(self, function: str) -> FunctionIO:
        fn = self.program.functions[function]
        return FunctionIO({name: torch_dtype(var.dtype) for name, var in fn.inputs.items()},
                          [v.name for v in fn.outputs])

    def operations(self, function: str) -> list[Any]:
        """The function's top-level operations in program order."""
        return list(self.program.functions[function].operations)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for fn in self.program.functions.values():
            for op in _all_ops(fn.operations):
                counts[op.op_type] = counts.get(op.op_type, 0) + 1
        return dict(sorted(counts.items()))

    def unsupported(self) -> list[str]:
        """Op types of the program (every function, nested blocks included) that have no kernel."""
        missing = set()
        for fn in self.program.functions.values():
            for op in _all_ops(fn.operations):
                if op.op_type != "const" and (op.op_type not in KERNELS or op.blocks):
                    missing.add(op.op_type)
        return sorted(missing)

    def run(self, function: str, feeds: dict[str, Any], observe: Observer | None = None) -> dict[str, torch.Tensor]:
        """Evaluate ``function`` on ``feeds`` (arrays or tensors by input name); outputs by name.

        Inputs are cast to the dtypes the function declares. ``observe(op, outputs)`` is called
        after every non-const op (used to find where a program departs from its reference).

        Raises:
            NotInterpreted: if the function holds an op without a kernel.
            KeyError: if a declared input is missing from ``feeds``.
        """
        fn = self.program.functions[function]
        env: dict[str, Any] = dict(self._constants(function))
        for name, var in fn.inputs.items():
            if name not in feeds:
                raise KeyError(f"function `{function}` needs input `{name}`")
            value = feeds[name]
            tensor = value if isinstance(value, torch.Tensor) else _as_tensor(value, self.device)
            dtype = torch_dtype(var.dtype)
            env[name] = tensor.to(self.device, dtype) if dtype is not None else tensor.to(self.device)
        with torch.no_grad():
            for op in fn.operations:
                if op.op_type == "const":
                    continue
                kernel = KERNELS.get(op.op_type)
                if kernel is None or op.blocks:
                    raise NotInterpreted(message_for([op.op_type]))
                result = kernel(OpArgs(op, env, self.device))
                outputs = list(result) if isinstance(result, (list, tuple)) else [result]
                if len(outputs) != len(op.outputs):
                    raise RuntimeError(f"kernel of `{op.op_type}` returned {len(outputs)} outputs for op "
                                       f"`{op.name}`, which declares {len(op.outputs)}")
                stored = []
                for var, out in zip(op.outputs, outputs, strict=True):
                    dtype = torch_dtype(var.dtype)
                    if isinstance(out, torch.Tensor) and dtype is not None and out.dtype != dtype:
                        out = _round_to(out, dtype)
                    env[var.name] = out
                    stored.append(out)
                if observe is not None:
                    observe(op, stored)
        return {var.name: env[var.name] for var in fn.outputs}

    def decompressed_weights(self, function: str) -> dict[str, tuple[str, torch.Tensor]]:
        """Every compressed weight of ``function``, decoded as a run would decode it: by output name,
        ``(op type, tensor)``.

        A compressed weight is a ``constexpr_*`` op all of whose inputs are consts (palette + indices,
        int8 data + scale...). It is evaluated with the same kernel and rounded to the same declared dtype
        as :meth:`run` does, so the tensor is exactly what the program's arithmetic receives.

        Raises:
            NotInterpreted: if such an op has no kernel.
        """
        constants = self._constants(function)
        decoded: dict[str, tuple[str, torch.Tensor]] = {}
        with torch.no_grad():
            for op in self.program.functions[function].operations:
                if not op.op_type.startswith("constexpr_"):
                    continue
                if not all(var.name in constants for var in _input_vars(op)):
                    continue  # fed by another op: not a stored weight
                kernel = KERNELS.get(op.op_type)
                if kernel is None:
                    raise NotInterpreted(message_for([op.op_type]))
                value = kernel(OpArgs(op, constants, self.device))
                dtype = torch_dtype(op.outputs[0].dtype)
                if dtype is not None and value.dtype != dtype:
                    value = _round_to(value, dtype)
                decoded[op.outputs[0].name] = (op.op_type, value)
        return decoded

    def _constants(self, function: str) -> dict[str, Any]:
        """The function's const values, converted once (tensors on the device; strings and bools as is)."""
        if function not in self._consts:
            table: dict[str, Any] = {}
            for op in self.program.functions[function].operations:
                if op.op_type != "const":
                    continue
                var = op.outputs[0]
                value = var.val
                if isinstance(value, (str, bool)) or value is None:
                    table[var.name] = value
                else:
                    table[var.name] = _as_tensor(value, self.device)
            self._consts[function] = table
        return self._consts[function]


def _round_to(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Store ``tensor`` as ``dtype``: floats round to nearest; float to integer casts truncate as MIL's cast."""
    return tensor.to(dtype)


def _all_ops(operations) -> Iterable[Any]:
    for op in operations:
        yield op
        for block in op.blocks:
            yield from _all_ops(block.operations)


def _input_vars(op) -> Iterable[Any]:
    for value in op.inputs.values():
        yield from (value if isinstance(value, (list, tuple)) else [value])
