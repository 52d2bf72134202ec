"""ExecuTorch ``.pte`` files lowered to the Core ML delegate, run through edgeir-mil where that is sound.

A method whose whole graph is **one** Core ML delegate call -- the method's inputs go straight into
the delegate, its outputs straight out, no ExecuTorch operator before, between or after -- computes
exactly what its Core ML payload computes. Such a method is run by interpreting the payload's ML
Program (:mod:`edgeir.targets.coreml.mil`). A method with operators outside the delegate, or with
several delegate calls, cannot be: the Python ExecuTorch runtime dispatches delegate calls only to
backends compiled into it (``CoreMLBackend`` exists only in Apple builds, and no Python backend can be
registered), so the interpreted payloads cannot be stitched with ExecuTorch's own kernels. Those
bundles are not run, and :func:`why_not` says so in words.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeir.target import Runner

COREML_BACKEND_ID = "CoreMLBackend"
REFERENCE_MAGIC = b"CMJR"


class NotSound(RuntimeError):
    """The ``.pte`` cannot be run as its Core ML payloads alone."""


@dataclass(frozen=True)
class DelegatedMethod:
    """One method = one Core ML delegate call: payload package, its function, and the I/O order."""

    package: Path
    function: str | None
    inputs: list[int]   # position of each function input among the method's inputs
    outputs: list[int]  # position of each method output among the function's outputs


def unpack(pte_path: Path, scratch: Path) -> dict[str, DelegatedMethod]:
    """The delegated methods of ``pte_path``, their payloads unpacked under ``scratch``.

    Raises:
        NotSound: if a method is not exactly one Core ML delegate call fed by the method's inputs.
    """
    from executorch.backends.apple.coreml import executorchcoreml
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, FreeCall, KernelCall, MoveCall

    pte = deserialize_pte_binary(pte_path.read_bytes())
    program, named = pte.program, pte.named_data
    methods: dict[str, DelegatedMethod] = {}
    for plan in program.execution_plan:
        instructions = [i.instr_args for chain in plan.chains for i in chain.instructions]
        kernels = [i for i in instructions if isinstance(i, KernelCall)]
        calls = [i for i in instructions if isinstance(i, DelegateCall)]
        other = [i for i in instructions if not isinstance(i, (KernelCall, DelegateCall, FreeCall, MoveCall))]
        if kernels or other or len(calls) != 1:
            raise NotSound(f"method '{plan.name}' runs {len(kernels)} ExecuTorch operator(s) and {len(calls)} "
                           "delegate call(s): only a method that is one Core ML delegate call can be run as its "
                           "payload, since this ExecuTorch runtime cannot call a Python backend between its kernels")
        call = calls[0]
        delegate = plan.delegates[call.delegate_index]
        if delegate.id != COREML_BACKEND_ID:
            raise NotSound(f"method '{plan.name}' is delegated to {delegate.id}, not Core ML")
        args = list(call.args)
        n_in = len(args) - len(plan.outputs)
        ins, outs = args[:n_in], args[n_in:]
        if sorted(ins) != sorted(plan.inputs) or sorted(outs) != sorted(plan.outputs):
            raise NotSound(f"method '{plan.name}': the delegate's arguments are not the method's inputs and outputs")
        payload, function = bytes(program.backend_delegate_data[delegate.processed.index].data), None
        if payload.startswith(REFERENCE_MAGIC):
            reference = json.loads(payload[len(REFERENCE_MAGIC):])
            function = reference.get("functionName")
            payload = bytes(named.buffers[named.pte_data[reference["key"]].buffer_index])
        target = scratch / plan.name
        target.mkdir(parents=True)
        if not executorchcoreml.unflatten_directory_contents(payload, str(target)):
            raise NotSound(f"method '{plan.name}': its Core ML payload could not be unpacked")
        package = next(target.rglob("*.mlpackage"))
        methods[plan.name] = DelegatedMethod(package, function, [list(plan.inputs).index(v) for v in ins],
                                             [outs.index(v) for v in plan.outputs])
    return methods


class DelegatePayloadRunner(Runner):
    """Runs each method of a Core ML-delegated ``.pte`` by interpreting its single payload (edgeir-mil)."""

    def __init__(self, pte_path: Path) -> None:
        from edgeir.targets.coreml.mil import MILProgram, NotInterpreted, message_for
        from edgeir.targets.coreml.runtime import NOTE, runtime_name

        self.runtime = runtime_name() + ", the .pte's Core ML delegate payload"
        self.note = NOTE + ("; for a .pte: each method is one Core ML delegate call, so its payload is what "
                            "it computes (ExecuTorch's own I/O handling is not run)")
        self._scratch = tempfile.TemporaryDirectory(prefix="edgeir-coreml-payload-")
        self._methods = unpack(pte_path, Path(self._scratch.name))
        self._programs: dict[str, Any] = {}
        for name, method in self._methods.items():
            program = MILProgram(method.package)
            missing = program.unsupported()
            if missing:
                raise NotInterpreted(f"method '{name}': " + message_for(missing))
            self._programs[name] = program

    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        method, mil = self._methods[program], self._programs[program]
        function = method.function or mil.functions[0]
        io = mil.io(function)
        feeds = {name: torch.from_numpy(np.ascontiguousarray(inputs[position], dtype=np.float32))
                 for name, position in zip(io.inputs, method.inputs, strict=True)}
        result = mil.run(function, feeds)
        outputs = [result[name] for name in io.outputs]
        return [outputs[i].float().cpu().numpy() for i in method.outputs]


def why_not(pte_path: Path) -> str:
    """Empty when every method of the ``.pte`` can be run as its Core ML payload, else the reason."""
    from edgeir.targets.coreml.mil import NotInterpreted

    try:
        DelegatePayloadRunner(pte_path)
    except (NotSound, NotInterpreted) as exc:
        return str(exc)
    return ""
