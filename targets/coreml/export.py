"""Core ML ``.mlpackage``: an ML Program for iOS 17+, float16 by default.

Schemes: ``fp16`` and ``fp32`` (compute precision of the whole program); ``int8``, static W8A8
through PT2E with ExecuTorch's ``CoreMLQuantizer`` (engine ``pt2e-coreml``): the converted graph's
quantize/dequantize pairs become Core ML ``quantize``/``dequantize`` ops and int8
``constexpr_affine_dequantize`` weights, and what stays float computes in float16; ``int8-weights``
and ``w4``, weight compression of the converted program (engine ``coremltools-optimize``).

Core ML runs only on Apple platforms. On other hosts (or on a Mac with ``--runtime mil``) the saved
package is run by edgeir's own interpreter of its ML Program (:mod:`edgeir.targets.coreml.mil`,
runtime ``edgeir-mil``): the numbers check the conversion and the program's arithmetic, not Apple's
kernels or the Neural Engine. A package holding an op the interpreter has no kernel for is not run,
and the reason names the op.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeir import __version__
from edgeir.target import (
    Availability,
    ExportOptions,
    ExportResult,
    ProfileRunner,
    ReferenceWeights,
    Runner,
    Target,
    package_version,
)
from edgeir.targets.coreml.quiet import converter_progress

PACKAGE = "model.mlpackage"
DEBUG_HANDLE_MAP = "executorch_debug_handle_mapping.json"
# coremltools 9.0: the pass common::reduce_transposes crashes on a matmul with a transposed operand
# (transposed attention, q @ k^T). Removing the pass was verified to convert correctly.
SKIPPED_PASSES = ("common::reduce_transposes",)


class CoreMLRunner(Runner):
    """Core ML predictions (macOS only)."""

    runtime = "coreml"

    def __init__(self, path: Path, programs: list[dict[str, Any]]) -> None:
        import coremltools as ct

        self._programs = {p["name"]: p for p in programs}
        if len(programs) == 1:
            self._models = {programs[0]["name"]: ct.models.MLModel(str(path))}
        else:
            self._models = {p["name"]: ct.models.MLModel(str(path), function_name=p["name"]) for p in programs}

    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        spec = self._programs[program]
        feeds = {i["name"]: np.ascontiguousarray(x, dtype=np.float32)
                 for i, x in zip(spec["inputs"], inputs, strict=True)}
        result = self._models[program].predict(feeds)
        return [np.asarray(result[o["name"]], dtype=np.float32) for o in spec["outputs"]]


class CoreMLProfileRunner(CoreMLRunner, ProfileRunner):
    """Core ML on macOS; Core ML schedules its own threads and compute units (no thread setting)."""

    notes = ("Core ML chooses its own threads and compute units; the thread setting is not applied",)

    def version(self) -> str:
        return package_version("coremltools")


class CoreMLTarget(Target):
    name = "coreml"
    summary = ("Core ML ML Program .mlpackage (iOS 17+, fp16 default); runs in Core ML on macOS, elsewhere "
               "through edgeir's MIL interpreter (edgeir-mil)")
    runtimes = ("coreml", "mil")
    backends = ("mlprogram",)
    quant_schemes = ("fp16", "fp32", "int8", "int8-weights", "w4")
    default_quant = "fp16"

    def quant_engine(self, options: ExportOptions):
        if options.quant == "int8":
            from edgeir.quant.pt2e import COREML_ENGINE

            return COREML_ENGINE
        if options.quant in ("int8-weights", "w4"):
            from edgeir.quant.coreml_engine import ENGINE

            return ENGINE
        return None

    def availability(self) -> Availability:
        ok = importlib.util.find_spec("coremltools") is not None
        return Availability(ok, "" if ok else "the coremltools package is not installed")

    def export(self, recipe, options: ExportOptions, out_dir: Path) -> ExportResult:
        if len(recipe.programs) == 1:
            compression = self._convert(recipe.programs[0], options, out_dir / PACKAGE, recipe)
            details: dict[str, Any] = {"functions": [recipe.programs[0].name],
                                       "compute_precision": compute_precision_name(options.quant)}
            if compression:
                details["compression"] = compression
            return ExportResult(files=[PACKAGE], details=details)
        return self._export_multifunction(recipe, options, out_dir)

    def _export_multifunction(self, recipe, options: ExportOptions, out_dir: Path) -> ExportResult:
        """Several programs as one multifunction package whose functions share identical weights."""
        import coremltools as ct

        with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
            descriptor = ct.utils.MultiFunctionDescriptor()
            compression = {}
            for program in recipe.programs:
                path = Path(scratch) / f"{program.name}.mlpackage"
                compression[program.name] = self._convert(program, options, path, recipe, multifunction=True)
                descriptor.add_function(str(path), src_function_name="main", target_function_name=program.name)
            descriptor.default_function_name = recipe.programs[0].name
            ct.utils.save_multifunction(descriptor, str(out_dir / PACKAGE))
        details: dict[str, Any] = {"functions": [p.name for p in recipe.programs],
                                   "compute_precision": compute_precision_name(options.quant)}
        if any(compression.values()):
            details["compression"] = compression
            details["minimum_deployment_target"] = "iOS18"
        return ExportResult(files=[PACKAGE], details=details)

    def _convert(self, program, options: ExportOptions, path: Path, recipe, multifunction: bool = False
                 ) -> dict[str, Any]:
        """Convert one program to ``path``; returns the weight-compression facts (empty for other schemes).

        A compressed function of a multifunction package is converted for iOS 18: coremltools saves
        multifunction packages at iOS 18, whose ``constexpr_*`` decompression ops differ from the iOS 16/17 ones
        the compression passes write for an iOS 17 program (``save_multifunction`` then fails on them with
        "Unknown input 'shape' for op 'constexpr_lut_to_dense'").

        The program's module is the eager model, or for ``int8`` the PT2E-converted graph of
        engine ``pt2e-coreml`` (float ops between quantize/dequantize pairs), which coremltools
        turns into ``quantize``/``dequantize`` ops and int8 constant weights.
        """
        import coremltools as ct
        import torch

        engine = self.quant_engine(options)
        compressing = engine is not None and engine.post_export
        if engine is not None and not engine.post_export:
            engine.register_ops()  # the quantized_decomposed ops of the converted graph
        exported = torch.export.export(program.module.eval(), program.example_inputs(), strict=False)
        exported = exported.run_decompositions({})
        pipeline = ct.PassPipeline.DEFAULT
        pipeline.remove_passes(list(SKIPPED_PASSES))
        precision = ct.precision.FLOAT32 if options.quant == "fp32" else ct.precision.FLOAT16
        with converter_progress():
            model = ct.convert(
                exported,
                inputs=[ct.TensorType(name=spec.name, shape=spec.shape) for spec in program.inputs],
                outputs=[ct.TensorType(name=spec.name) for spec in program.outputs],
                convert_to="mlprogram",
                minimum_deployment_target=ct.target.iOS18 if multifunction and compressing else ct.target.iOS17,
                compute_precision=precision,
                pass_pipeline=pipeline,
            )
        model.author = f"edgeir {__version__}"
        model.short_description = f"{program.name}: image restoration exported by edgeir"
        model.version = __version__
        model.user_defined_metadata["edgeir.program"] = program.name
        model.user_defined_metadata["edgeir.io"] = json.dumps(program.to_json())
        model.user_defined_metadata["edgeir.tile"] = json.dumps(recipe.tile.to_json())
        compression: dict[str, Any] = {}
        if compressing:
            with converter_progress():
                model, compression = _compress(engine, model, options.quant, path)
        model.save(str(path))
        # coremltools writes ExecuTorch's debug-handle map into packages converted from torch.export
        # programs (0.73 MB of AnyIR mobile's 3.9 MB fp16 package). The package's Manifest.json does not
        # list it and Core ML never reads it: an app would only carry it.
        (path / DEBUG_HANDLE_MAP).unlink(missing_ok=True)
        if compression:
            compression["package_bytes_after"] = _tree_bytes(path)
        return compression

    def runtime(self, bundle) -> Runner | Availability:
        """Core ML on macOS; elsewhere edgeir's MIL interpreter, or why not when the package holds an op it
        does not interpret."""
        if platform.system() == "Darwin":
            return CoreMLRunner(bundle.path / PACKAGE, bundle.programs)
        return self._mil_runner(bundle)

    def runtime_named(self, bundle, name: str) -> Runner | Availability:
        """``coreml`` (Core ML itself, macOS only) or ``mil`` (edgeir's interpreter, any host)."""
        if name == "mil":
            return self._mil_runner(bundle)
        if name == "coreml":
            if platform.system() != "Darwin":
                return Availability(False, f"Core ML predictions need macOS; this host runs {platform.system()}")
            return CoreMLRunner(bundle.path / PACKAGE, bundle.programs)
        return super().runtime_named(bundle, name)

    def _mil_runner(self, bundle) -> Runner | Availability:
        from edgeir.targets.coreml.mil import NotInterpreted
        from edgeir.targets.coreml.runtime import MILRunner

        try:
            return MILRunner(bundle.path / PACKAGE, bundle.programs)
        except NotInterpreted as exc:
            return Availability(False, str(exc))

    def locate_divergence(self, bundle, program: str, module, inputs, threshold_db: float):
        """The first MIL op whose output departs from the eager model's intermediate, found by interpreting
        the package with edgeir-mil (see :mod:`edgeir.targets.coreml.mil.locate`), on macOS too."""
        from edgeir.targets.coreml.mil.locate import locate

        return locate(bundle.path / PACKAGE, program, bundle.programs, module, inputs, threshold_db)

    def reference_weights(self, bundle, program: str, state) -> ReferenceWeights | None:
        """For ``int8-weights`` and ``w4`` packages: the compressed weights the package holds, decoded by
        edgeir-mil's kernels and mapped onto the state-dict keys they came from (see
        :mod:`edgeir.targets.coreml.compressed`); None for other schemes."""
        if bundle.manifest.get("quantization", {}).get("mode") != "weight-compression":
            return None
        from edgeir.targets.coreml.compressed import package_weights

        mapped = package_weights(bundle.path / PACKAGE, program, state)
        return ReferenceWeights(mapped.weights, {"source": f"decompressed from {PACKAGE} by edgeir-mil's kernels",
                                                 **mapped.summary()})

    def profile_runner(self, bundle, threads: int) -> ProfileRunner | Availability:
        if platform.system() != "Darwin":
            # edgeir-mil gives numbers (verify, run), not Core ML's speed.
            return Availability(False, f"Core ML predictions need macOS; this host runs {platform.system()}. "
                                       "edgeir's MIL interpreter checks the package's numbers (verify, run), but an "
                                       "interpreter's speed says nothing about Core ML's, so it is not timed")
        return CoreMLProfileRunner(bundle.path / PACKAGE, bundle.programs)

    def inspect(self, bundle) -> dict[str, Any]:
        """Inputs, outputs and MIL operation counts per function, read from the saved package."""
        import coremltools as ct

        spec = ct.utils.load_spec(str(bundle.path / PACKAGE))
        # A multifunction package describes I/O per function; a single one at the top level.
        described = {f.name: f for f in spec.description.functions} or {"main": spec.description}
        default = spec.description.defaultFunctionName or next(iter(described))
        description = {
            "inputs": _shapes(described[default].input),
            "outputs": _shapes(described[default].output),
            "specification_version": spec.specificationVersion,
            "functions": {},
        }
        for name, function in spec.mlProgram.functions.items():
            ops: dict[str, int] = {}
            for block in function.block_specializations.values():
                for op in block.operations:
                    ops[op.type] = ops.get(op.type, 0) + 1
            entry = {"op_counts": dict(sorted(ops.items())), "opsets": sorted(function.block_specializations)}
            if name in described:
                entry.update(inputs=_shapes(described[name].input), outputs=_shapes(described[name].output))
            description["functions"][name] = entry
        return description

    def toolchain_versions(self) -> dict[str, str]:
        return {"coremltools": package_version("coremltools")}


def compute_precision_name(quant: str) -> str:
    """Precision Core ML computes the program's float operations in: float32 for ``fp32``, else float16.

    For ``int8`` that is everything between the quantize/dequantize pairs and what stays float.
    """
    return "float32" if quant == "fp32" else "float16"


def _compress(engine, model, scheme: str, path: Path) -> tuple[Any, dict[str, Any]]:
    """Compress ``model``'s weights with ``engine``; the facts record the float16 package size it replaces."""
    from edgeir.quant.coreml_engine import compressed_op_counts

    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        model.save(str(Path(scratch) / PACKAGE))
        (Path(scratch) / PACKAGE / DEBUG_HANDLE_MAP).unlink(missing_ok=True)
        before = _tree_bytes(Path(scratch) / PACKAGE)
    compressed = engine.compress(model, scheme)
    for key, value in model.user_defined_metadata.items():
        compressed.user_defined_metadata[key] = value
    compressed.author, compressed.short_description, compressed.version = model.author, model.short_description, \
        model.version
    return compressed, {"engine": engine.name, "scheme": scheme, "compute_dtype": "float16",
                        "compressed_ops": compressed_op_counts(compressed), "package_bytes_fp16": before}


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _shapes(features) -> dict[str, list[int]]:
    return {f.name: list(f.type.multiArrayType.shape) for f in features}


TARGET = CoreMLTarget()
