"""ExecuTorch ``.pte``: torch.export, lowered to XNNPACK (default), to Core ML, or left on portable kernels.

Several programs become named methods of one ``.pte``. The delegation summary (how much of each
graph the delegate took, and which operators stayed outside) goes into the manifest, because
non-delegated islands are where artifact latency goes.

The Core ML delegate (``--backend coreml``) compiles each delegated subgraph to a Core ML model
inside the ``.pte`` (iOS 17 minimum deployment target; float32 compute for ``fp32``, float16 for
``fp16`` and for the float parts of ``int8``). It runs only where the ExecuTorch runtime was built
with ``CoreMLBackend`` (Apple platforms); the PyPI runtime on other hosts has no such backend, so
those bundles are not run here and the reason says so.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.target import Availability, ExportOptions, ExportResult, ProfileRunner, Runner, Target, package_version

PTE = "model.pte"
#: ExecuTorch backend id of the Core ML delegate, as registered in a runtime that has it.
COREML_BACKEND_ID = "CoreMLBackend"
#: Prefix of a Core ML delegate payload that refers to a shared (multifunction) model in the named data.
COREML_REFERENCE_MAGIC = b"CMJR"
#: Core ML delegate compute precision per scheme (int8: the float parts around the quantize/dequantize pairs).
COREML_PRECISION = {"fp32": "float32", "fp16": "float16", "int8": "float16"}


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
        "non_delegated_macs": non_delegated_macs(graph_module),
    }


def non_delegated_macs(graph_module) -> int:
    """MACs of the convolutions and matrix products a lowered graph runs outside its delegates.

    With the model's total MACs this gives the share of the arithmetic the delegate runs (the
    element-wise operators left outside cost bandwidth, not MACs).
    """
    import math

    total = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        op = str(node.target).rsplit("aten.", 1)[-1].split(".")[0]
        out = node.meta.get("val")
        if op not in ("convolution", "mm", "bmm", "addmm") or out is None or not hasattr(out, "shape"):
            continue
        if op == "convolution":
            total += math.prod(out.shape) * math.prod(node.args[1].meta["val"].shape[1:])
        else:
            total += math.prod(out.shape) * int(node.args[1 if op == "addmm" else 0].meta["val"].shape[-1])
    return int(total)


def delegate_ids(pte: bytes) -> list[str]:
    """Backend ids of the delegates in a serialized program (``XnnpackBackend``, ``CoreMLBackend``), sorted."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(pte).program
    return sorted({delegate.id for plan in program.execution_plan for delegate in plan.delegates})


def coreml_delegate_contents(pte: bytes) -> dict[str, dict[str, Any]]:
    """Per method, what its Core ML delegates hold: MIL operation counts and the weight bytes.

    Each Core ML delegate's payload is a flattened directory with an ``.mlpackage``, inline, or
    (several methods: one multifunction package whose functions share weights) in the program's
    named data, referenced by key and function name. It is unpacked and read with coremltools,
    so an int8 artifact shows its ``quantize``/``dequantize`` ops and ``constexpr_affine_dequantize``
    weights without running it. ``weight_bytes`` is the size of the weights of the package(s) a
    method's delegates use (shared between the methods of a multifunction package).
    """
    import json
    import tempfile

    import coremltools as ct
    from executorch.backends.apple.coreml import executorchcoreml
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte_file = deserialize_pte_binary(pte)
    program = pte_file.program
    named = pte_file.named_data
    contents: dict[str, dict[str, Any]] = {}
    for plan in program.execution_plan:
        ops: dict[str, int] = {}
        weight_bytes = 0
        for delegate in plan.delegates:
            if delegate.id != COREML_BACKEND_ID:
                continue
            payload, function = bytes(program.backend_delegate_data[delegate.processed.index].data), None
            if payload.startswith(COREML_REFERENCE_MAGIC):  # a reference into the named data (multifunction)
                reference = json.loads(payload[len(COREML_REFERENCE_MAGIC):])
                function = reference.get("functionName")
                payload = bytes(named.buffers[named.pte_data[reference["key"]].buffer_index])
            with tempfile.TemporaryDirectory() as scratch:
                if not executorchcoreml.unflatten_directory_contents(payload, scratch):
                    raise ValueError(f"method '{plan.name}': a Core ML delegate payload could not be unpacked")
                package = next(Path(scratch).rglob("*.mlpackage"))
                weight_bytes += sum(f.stat().st_size for f in package.rglob("weights/*") if f.is_file())
                spec = ct.utils.load_spec(str(package))
            for name, mil in spec.mlProgram.functions.items():
                if function is not None and name != function:
                    continue
                for block in mil.block_specializations.values():
                    for op in block.operations:
                        ops[op.type] = ops.get(op.type, 0) + 1
        if ops:
            contents[plan.name] = {"op_counts": dict(sorted(ops.items())), "weight_bytes": weight_bytes}
    return contents


def coreml_partitioner(quant: str):
    """The Core ML partitioner with edgeir's compile specs for ``quant``.

    iOS 17 minimum deployment target (as the ``coreml`` target), the compute precision of
    :data:`COREML_PRECISION`, and coremltools' default pass pipeline without the pass that
    crashes on transposed attention (:data:`edgeir.targets.coreml.SKIPPED_PASSES`).
    """
    import coremltools as ct
    from edgeir.targets.coreml import SKIPPED_PASSES
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    precision = ct.precision.FLOAT32 if COREML_PRECISION[quant] == "float32" else ct.precision.FLOAT16
    passes = [name for name in ct.PassPipeline.DEFAULT.passes if name not in SKIPPED_PASSES]
    specs = CoreMLBackend.generate_compile_specs(minimum_deployment_target=ct.target.iOS17,
                                                 compute_precision=precision, pass_names=passes)
    return CoreMLPartitioner(compile_specs=specs)


class ExecuTorchTarget(Target):
    name = "executorch"
    summary = ("ExecuTorch .pte: XNNPACK delegate (default; fp32, int8) and portable kernels (fp32) run here; "
               "Core ML delegate (--backend coreml; fp32, fp16, int8) runs on Apple devices, elsewhere through "
               "edgeir-mil on its payload when each method is one delegate call")
    backends = ("xnnpack", "portable", "coreml")
    quant_schemes = ("fp32", "fp16", "int8")
    default_quant = "fp32"
    #: Schemes per backend: fp16 only through the Core ML delegate; int8 needs a quantizer for the delegate.
    backend_schemes = {"xnnpack": ("fp32", "int8"), "portable": ("fp32",), "coreml": ("fp32", "fp16", "int8")}

    def __init__(self) -> None:
        self._payload_reasons: dict[str, str] = {}  # bundle path -> why edgeir-mil cannot run its payloads

    def quant_engine(self, options: ExportOptions):
        offered = self.backend_schemes.get(options.backend, ())
        if options.quant not in offered:
            from edgeir.errors import UsageError

            if options.quant == "int8":
                raise UsageError(f"int8 for executorch needs the xnnpack backend (XNNPACKQuantizer) or the coreml "
                                 f"backend (CoreMLQuantizer); backend '{options.backend}' offers "
                                 f"{', '.join(offered)} only")
            where = [b for b, schemes in self.backend_schemes.items() if options.quant in schemes]
            raise UsageError(f"quantization scheme '{options.quant}' is not available for target executorch, which "
                             f"offers {', '.join(offered)} with backend '{options.backend}'; '{options.quant}' works "
                             f"with: {', '.join(f'--backend {b}' for b in where)}, and target coreml")
        if options.quant != "int8":
            return None
        from edgeir.quant.pt2e import COREML_ENGINE, XNNPACK_ENGINE

        return COREML_ENGINE if options.backend == "coreml" else XNNPACK_ENGINE

    def availability(self) -> Availability:
        ok = importlib.util.find_spec("executorch") is not None
        return Availability(ok, "" if ok else "the executorch package is not installed")

    def export(self, recipe, options: ExportOptions, out_dir: Path) -> ExportResult:
        import torch
        from executorch.exir import to_edge_transform_and_lower

        self.quant_engine(options)  # refuses a scheme the backend does not offer
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        exported = {
            program.name: torch.export.export(program.module.eval(), program.example_inputs(), strict=False)
            for program in recipe.programs
        }
        seconds["torch_export"] = time.perf_counter() - start
        partitioners = []
        details: dict[str, Any] = {"methods": list(exported)}
        if options.backend == "xnnpack":
            from edgeir.targets.xnnpack_passes import apply_delegate_passes
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            start = time.perf_counter()
            details["delegate_passes"] = {}
            for program in recipe.programs:
                exported[program.name], records = apply_delegate_passes(exported[program.name],
                                                                        program.example_inputs())
                details["delegate_passes"][program.name] = records
            seconds["delegate_passes"] = time.perf_counter() - start
            partitioners = [XnnpackPartitioner()]
        elif options.backend == "coreml":
            partitioners = [coreml_partitioner(options.quant)]
            details["coreml"] = {"minimum_deployment_target": "iOS17",
                                 "compute_precision": COREML_PRECISION[options.quant]}
        start = time.perf_counter()
        edge = to_edge_transform_and_lower(exported, partitioner=partitioners)
        seconds["to_edge_transform_and_lower"] = time.perf_counter() - start
        details["delegation"] = {name: delegation_summary(edge.exported_program(name).graph_module)
                                 for name in exported}
        start = time.perf_counter()
        buffer = edge.to_executorch().buffer
        seconds["to_executorch"] = time.perf_counter() - start
        details["export_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        details["delegates"] = delegate_ids(buffer)
        (out_dir / PTE).write_bytes(buffer)
        return ExportResult(files=[PTE], details=details)

    def runtime(self, bundle) -> Runner | None:
        """ExecuTorch's runtime; for a Core ML-delegated ``.pte`` on a runtime without ``CoreMLBackend``,
        edgeir-mil on the delegate payloads where each method is one delegate call
        (:mod:`edgeir.targets.coreml.delegate`), else None."""
        if not self.runtime_unavailable_reason(bundle):
            return ExecuTorchRunner(bundle.path / PTE)
        from edgeir.targets.coreml.delegate import DelegatePayloadRunner, NotSound
        from edgeir.targets.coreml.mil import NotInterpreted

        try:
            return DelegatePayloadRunner(bundle.path / PTE)
        except (NotSound, NotInterpreted) as exc:
            self._payload_reasons[str(bundle.path)] = str(exc)
            return None

    def profile_runner(self, bundle, threads: int) -> ProfileRunner | None:
        if self.runtime_unavailable_reason(bundle):
            return None
        return ExecuTorchProfileRunner(bundle.path / PTE, threads)

    def runtime_unavailable_reason(self, bundle=None) -> str:
        """Why a bundle does not run here: only one lowered to the Core ML delegate, on a runtime without it.

        Without a bundle, the reason for the only bundles this target cannot run (Core ML
        delegate), or empty when this runtime has the Core ML backend.
        """
        if bundle is not None and _backend(bundle) != "coreml":
            return ""
        if _has_backend(COREML_BACKEND_ID):
            return ""
        reason = ("the ExecuTorch Core ML delegate runs only on Apple devices (iOS, macOS): this host's ExecuTorch "
                  f"runtime has no {COREML_BACKEND_ID} registered, so a .pte lowered with --backend coreml was "
                  "checked structurally only (methods, delegates), not run")
        why = self._payload_reasons.get(str(bundle.path)) if bundle is not None else None
        return reason + (f"; edgeir-mil cannot stand in for it: {why}" if why else "")

    def inspect(self, bundle) -> dict[str, Any]:
        from executorch.runtime import Runtime

        pte = (bundle.path / PTE).read_bytes()
        program = Runtime.get().load_program(bundle.path / PTE)
        facts: dict[str, Any] = {"methods": sorted(program.method_names), "delegates": delegate_ids(pte)}
        if COREML_BACKEND_ID in facts["delegates"]:
            facts["coreml_delegates"] = coreml_delegate_contents(pte)
        return facts

    def toolchain_versions(self) -> dict[str, str]:
        return {"executorch": package_version("executorch")}


def _backend(bundle) -> str:
    """The bundle's backend (bundles written before backends were recorded: XNNPACK, the default)."""
    return (getattr(bundle, "manifest", None) or {}).get("backend") or ExecuTorchTarget.backends[0]


def _has_backend(backend_id: str) -> bool:
    """Whether this host's ExecuTorch runtime has ``backend_id`` registered."""
    from executorch.runtime import Runtime

    return bool(Runtime.get().backend_registry.is_available(backend_id))


TARGET = ExecuTorchTarget()
