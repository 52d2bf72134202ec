"""ExecuTorch ``.pte``: torch.export, lowered to XNNPACK (default) or left on portable kernels.

Several programs become named methods of one ``.pte``. The delegation summary (how much of each
graph XNNPACK took, and which operators stayed outside) goes into the manifest, because
non-delegated islands are where artifact latency goes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.target import Availability, ExportOptions, ExportResult, ProfileRunner, Runner, Target, package_version

PTE = "model.pte"


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

        from edgeir.opprofile import read_etdump

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


def delegation_summary(graph_module) -> dict[str, Any]:
    """Delegated vs non-delegated nodes of a lowered graph and the operators left outside.

    ``getitem`` nodes that unpack a delegate's outputs are bookkeeping, not computation, and are
    not counted as left outside.
    """
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    frame = info.get_operator_delegation_dataframe()
    outside = {
        str(row["op_type"]): int(row["occurrences_in_non_delegated_graphs"])
        for _, row in frame.iterrows()
        if row["op_type"] not in ("Total", "getitem") and int(row["occurrences_in_non_delegated_graphs"]) > 0
    }
    delegated, non_delegated = int(info.num_delegated_nodes), sum(outside.values())
    total = delegated + non_delegated
    return {
        "delegated_nodes": delegated,
        "non_delegated_nodes": non_delegated,
        "delegate_subgraphs": int(info.num_delegated_subgraphs),
        "coverage": round(delegated / total, 4) if total else 0.0,
        "non_delegated_ops": dict(sorted(outside.items(), key=lambda kv: -kv[1])),
    }


class ExecuTorchTarget(Target):
    name = "executorch"
    summary = "ExecuTorch .pte (XNNPACK delegate by default, or portable kernels); runs here"
    backends = ("xnnpack", "portable")
    quant_schemes = ("fp32", "int8")
    default_quant = "fp32"

    def quant_engine(self, options: ExportOptions):
        if options.quant != "int8":
            return None
        if options.backend != "xnnpack":
            from edgeir.errors import UsageError

            raise UsageError(f"int8 for executorch needs the xnnpack backend (XNNPACKQuantizer); "
                             f"backend '{options.backend}' offers fp32 only")
        from edgeir.quant.pt2e import ENGINE

        return ENGINE

    def availability(self) -> Availability:
        ok = importlib.util.find_spec("executorch") is not None
        return Availability(ok, "" if ok else "the executorch package is not installed")

    def export(self, recipe, options: ExportOptions, out_dir: Path) -> ExportResult:
        import torch
        from executorch.exir import to_edge_transform_and_lower

        exported = {
            program.name: torch.export.export(program.module.eval(), program.example_inputs(), strict=False)
            for program in recipe.programs
        }
        partitioners = []
        if options.backend == "xnnpack":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            partitioners = [XnnpackPartitioner()]
        edge = to_edge_transform_and_lower(exported, partitioner=partitioners)
        delegation = {name: delegation_summary(edge.exported_program(name).graph_module) for name in exported}
        (out_dir / PTE).write_bytes(edge.to_executorch().buffer)
        return ExportResult(files=[PTE], details={"methods": list(exported), "delegation": delegation})

    def runtime(self, bundle) -> Runner | None:
        return ExecuTorchRunner(bundle.path / PTE)

    def profile_runner(self, bundle, threads: int) -> ProfileRunner | None:
        return ExecuTorchProfileRunner(bundle.path / PTE, threads)

    def inspect(self, bundle) -> dict[str, Any]:
        from executorch.runtime import Runtime

        program = Runtime.get().load_program(bundle.path / PTE)
        return {"methods": sorted(program.method_names)}

    def toolchain_versions(self) -> dict[str, str]:
        return {"executorch": package_version("executorch")}


TARGET = ExecuTorchTarget()
