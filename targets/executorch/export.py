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
from pathlib import Path
from typing import Any

from edgeir.target import Availability, ExportOptions, ExportResult, ProfileRunner, Runner, Target, package_version
from edgeir.targets.executorch.inspection import (
    COREML_BACKEND_ID,
    coreml_delegate_contents,
    delegate_ids,
    delegation_summary,
)
from edgeir.targets.executorch.runtime import ExecuTorchProfileRunner, ExecuTorchRunner, _has_backend

PTE = "model.pte"
#: Core ML delegate compute precision per scheme (int8: the float parts around the quantize/dequantize pairs).
COREML_PRECISION = {"fp32": "float32", "fp16": "float16", "int8": "float16"}


def coreml_partitioner(quant: str):
    """The Core ML partitioner with edgeir's compile specs for ``quant``.

    iOS 17 minimum deployment target (as the ``coreml`` target), the compute precision of
    :data:`COREML_PRECISION`, and coremltools' default pass pipeline without the pass that
    crashes on transposed attention (:data:`edgeir.targets.coreml.SKIPPED_PASSES`).
    """
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    from edgeir.targets.coreml import SKIPPED_PASSES

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

        if options.backend == "coreml":
            return COREML_ENGINE
        from edgeir.targets.executorch.xnnpack_passes import computes_arithmetic, rewrite_before_quantization

        # The delegate passes fold per-channel arithmetic into layers exactly in float only: run them before the
        # quantizer sees the graph, so the int8 program is the folded one (its fake-quant reference too).
        return XNNPACK_ENGINE.with_rewrite(rewrite_before_quantization, computes_arithmetic)

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
        partitioners, transform_passes = [], []
        details: dict[str, Any] = {"methods": list(exported)}
        if options.backend == "xnnpack":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir.backend.canonical_partitioners.duplicate_dequant_node_pass import (
                DuplicateDequantNodePass,
            )

            from edgeir.targets.executorch.xnnpack_passes import apply_delegate_passes

            start = time.perf_counter()
            details["delegate_passes"] = {}
            for program in recipe.programs:
                exported[program.name], records = apply_delegate_passes(exported[program.name],
                                                                        program.example_inputs())
                details["delegate_passes"][program.name] = records
            seconds["delegate_passes"] = time.perf_counter() - start
            partitioners = [XnnpackPartitioner()]
            # ExecuTorch's own pass: a dequantize read by several ops gets one copy per reader. The partitioner
            # groups a quantized op with its inputs' dequantize ops, and one shared with an earlier float op
            # made that group depend on itself (Hi-IR int8: "Invalid partition, found dependency cycles").
            transform_passes = [DuplicateDequantNodePass()]
        elif options.backend == "coreml":
            partitioners = [coreml_partitioner(options.quant)]
            details["coreml"] = {"minimum_deployment_target": "iOS17",
                                 "compute_precision": COREML_PRECISION[options.quant]}
        from edgeir.targets.coreml.quiet import converter_progress

        start = time.perf_counter()
        with converter_progress():  # the Core ML delegate converts with coremltools
            edge = to_edge_transform_and_lower(exported, transform_passes=transform_passes, partitioner=partitioners)
        seconds["to_edge_transform_and_lower"] = time.perf_counter() - start
        delegation = {name: delegation_summary(edge.exported_program(name).graph_module) for name in exported}
        start = time.perf_counter()
        buffer = edge.to_executorch().buffer
        seconds["to_executorch"] = time.perf_counter() - start
        details["export_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        details["delegates"] = delegate_ids(buffer)
        (out_dir / PTE).write_bytes(buffer)
        return ExportResult(files=[PTE], delegation=delegation, details=details)

    def runtime(self, bundle) -> Runner | Availability:
        """ExecuTorch's runtime; for a Core ML-delegated ``.pte`` on a runtime without ``CoreMLBackend``,
        edgeir-mil on the delegate payloads where each method is one delegate call
        (:mod:`edgeir.targets.coreml.delegate`), else why neither runs it."""
        missing = _missing_delegate(bundle)
        if not missing:
            return ExecuTorchRunner(bundle.path / PTE)
        from edgeir.targets.coreml.delegate import DelegatePayloadRunner, NotSound
        from edgeir.targets.coreml.mil import NotInterpreted

        try:
            return DelegatePayloadRunner(bundle.path / PTE)
        except (NotSound, NotInterpreted) as exc:
            return Availability(False, f"{missing}; edgeir-mil cannot stand in for it: {exc}")

    def profile_runner(self, bundle, threads: int) -> ProfileRunner | Availability:
        missing = _missing_delegate(bundle)
        if missing:
            return Availability(False, missing)
        return ExecuTorchProfileRunner(bundle.path / PTE, threads)

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


def _missing_delegate(bundle) -> str:
    """Why this host's ExecuTorch runtime cannot run the bundle: only a ``.pte`` lowered to the Core ML delegate,
    on a runtime without it; empty when it can."""
    if _backend(bundle) != "coreml" or _has_backend(COREML_BACKEND_ID):
        return ""
    return ("the ExecuTorch Core ML delegate runs only on Apple devices (iOS, macOS): this host's ExecuTorch "
            f"runtime has no {COREML_BACKEND_ID} registered, so a .pte lowered with --backend coreml was "
            "checked structurally only (methods, delegates), not run")


def _backend(bundle) -> str:
    """The bundle's backend (bundles written before backends were recorded: XNNPACK, the default)."""
    return (getattr(bundle, "manifest", None) or {}).get("backend") or ExecuTorchTarget.backends[0]


TARGET = ExecuTorchTarget()
