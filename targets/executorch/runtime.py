"""Running a .pte with the ExecuTorch Python runtime, and timing it (ETDump per-operator rows where the
build has them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.target import ProfileRunner, Runner


class ExecuTorchRunner(Runner):
    """Runs methods of a ``.pte`` with the ExecuTorch Python runtime."""

    runtime = "executorch"

    def __init__(self, path: Path) -> None:
        from executorch.runtime import Runtime

        self._program = Runtime.get().load_program(path)
        self._methods: dict[str, Any] = {}

    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        if program not in self._methods:
            self._methods[program] = self._program.load_method(program)
        tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs]
        outputs = self._methods[program].execute(tensors)
        return [o.detach().numpy().astype(np.float32) for o in outputs]


class ExecuTorchProfileRunner(ExecuTorchRunner, ProfileRunner):
    """The ExecuTorch runtime with its (process-wide) thread pool resized; operators timed through ETDump."""

    def __init__(self, path: Path, threads: int) -> None:
        from executorch.extension.pybindings import _portable_lib

        self._path = path
        notes = []
        if threads:
            # Experimental pybinding (executorch 1.4): resizes the process-wide pool XNNPACK uses.
            _portable_lib._unsafe_reset_threadpool(threads)
        else:
            notes.append("threads=0: the runtime's default thread pool")
        super().__init__(path)
        self.threads = int(_portable_lib._threadpool_get_thread_count())
        if threads and self.threads != threads:
            notes.append(f"asked for {threads} threads; the runtime's pool has {self.threads}")
        self.notes = tuple(notes)

    def trace_ops(self, program, inputs, runs, workdir):
        import torch
        from executorch.runtime import Runtime

        from edgeir.profiles.operators import read_etdump

        traced = Runtime.get().load_program(self._path, enable_etdump=True)
        method = traced.load_method(program)
        tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs]
        for _ in range(runs):
            method.execute(tensors)
        etdump = Path(workdir) / f"{program}.etdp"
        traced.write_etdump_result_to_file(str(etdump), str(Path(workdir) / f"{program}.debug.bin"))
        if not etdump.is_file():
            # The executorch wheels on PyPI are built without EXECUTORCH_ENABLE_EVENT_TRACER: no ETDump here.
            self.notes = (*self.notes, "no per-operator rows: this executorch build has no event tracer (ETDump); "
                                       "import an ETDump from a device build with 'edgeir import-profile'")
            return []
        return list(read_etdump(etdump, program).ops)


def _has_backend(backend_id: str) -> bool:
    """Whether this host's ExecuTorch runtime has ``backend_id`` registered."""
    from executorch.runtime import Runtime

    return bool(Runtime.get().backend_registry.is_available(backend_id))

