"""ONNX: the dynamo exporter, dynamic H/W where the program allows, run here with ONNX Runtime."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from edgeir.target import Availability, ExportOptions, ExportResult, ProfileRunner, Runner, Target, package_version
from edgeir.targets.onnx.runtime import OnnxProfileRunner, OnnxRunner, program_file

log = logging.getLogger(__name__)

OPSET = 18


class OnnxTarget(Target):
    name = "onnx"
    summary = "ONNX model (dynamo exporter, opset 18, dynamic H/W where allowed); runs here with ONNX Runtime"
    backends = ("onnxruntime",)
    quant_schemes = ("fp32", "int8")
    default_quant = "fp32"
    dynamic_shapes = True

    def quant_engine(self, options: ExportOptions):
        if options.quant != "int8":
            return None
        from edgeir.quant.nncf_engine import ENGINE

        return ENGINE

    def availability(self) -> Availability:
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        return Availability(not missing, f"missing packages: {', '.join(missing)}" if missing else "")

    def export(self, recipe, options: ExportOptions, out_dir: Path) -> ExportResult:
        import torch

        if options.quant == "int8":
            return self._export_qdq(recipe, out_dir)
        files, dynamic_hw = [], {}
        for program in recipe.programs:
            name = program_file(program.name, len(recipe.programs))
            input_names = [spec.name for spec in program.inputs]
            dynamic = None
            if program.dynamic_hw is not None:
                dynamic = self._dynamic_shapes(program)
                dynamic_hw[program.name] = True
            onnx_program = torch.onnx.export(
                program.module, program.example_inputs(), dynamo=True, opset_version=OPSET,
                verbose=False, input_names=input_names, output_names=[spec.name for spec in program.outputs],
                dynamic_shapes=dynamic, external_data=False, optimize=True,
            )
            onnx_program.save(str(out_dir / name), external_data=False)
            _finalise(out_dir / name)
            files.append(name)
        return ExportResult(files=files, dynamic_hw=dynamic_hw, details={"opset": OPSET})

    @staticmethod
    def _export_qdq(recipe, out_dir: Path) -> ExportResult:
        """Fake-quant programs (NNCF, native ``torch.fake_quantize_*`` ops) as QDQ models at their exported shapes.

        The dynamo exporter writes each fake-quantize as a QuantizeLinear/DequantizeLinear pair.
        """
        import torch

        files, integer_weights = [], {}
        for program in recipe.programs:
            name = program_file(program.name, len(recipe.programs))
            exported = torch.export.export(program.module, program.example_inputs(), strict=False)
            onnx_program = torch.onnx.export(
                exported, program.example_inputs(), dynamo=True, opset_version=OPSET, verbose=False,
                input_names=[spec.name for spec in program.inputs],
                output_names=[spec.name for spec in program.outputs], external_data=False, optimize=True)
            onnx_program.save(str(out_dir / name), external_data=False)
            files.append(name)
            integer_weights[program.name] = _finalise(out_dir / name, integer_weights=True)
        # With quantizers on the layers' outputs as well as their inputs (nncf_engine.quantize_layer_outputs),
        # ONNX Runtime's extended optimisations fuse each DQ -> Conv/MatMul -> Q into QLinearConv /
        # QLinearMatMul (integer kernels); at the basic level the QDQ model runs in float. The bundle says
        # which level it was verified with; an app must create its session the same way.
        return ExportResult(files=files, details={"opset": OPSET, "format": "QDQ",
                                                  "ort_graph_optimization": "all",
                                                  "integer_weights": integer_weights})

    @staticmethod
    def _dynamic_shapes(program) -> tuple[dict[int, Any], ...]:
        from torch.export import Dim

        size = program.dynamic_hw
        shapes = []
        for index, spec in enumerate(program.inputs):
            if spec.kind in ("image", "mask") and len(spec.shape) == 4:
                # H and W as multiples of the program's size multiple, so shape arithmetic stays exact.
                h = Dim(f"h{index}", min=max(1, size.min // size.multiple), max=size.max // size.multiple)
                w = Dim(f"w{index}", min=max(1, size.min // size.multiple), max=size.max // size.multiple)
                shapes.append({2: size.multiple * h, 3: size.multiple * w})
            else:
                shapes.append({})
        return tuple(shapes)

    def runtime(self, bundle) -> Runner | Availability:
        return OnnxRunner(bundle.path, bundle.programs, optimization=_optimization(bundle))

    def profile_runner(self, bundle, threads: int) -> ProfileRunner | Availability:
        return OnnxProfileRunner(bundle.path, bundle.programs, threads, _optimization(bundle))

    def inspect(self, bundle) -> dict[str, Any]:
        import onnx

        ops: dict[str, int] = {}
        for program in bundle.programs:
            model = onnx.load(str(bundle.path / program_file(program["name"], len(bundle.programs))))
            for node in model.graph.node:
                ops[node.op_type] = ops.get(node.op_type, 0) + 1
        return {"op_counts": dict(sorted(ops.items()))}

    def toolchain_versions(self) -> dict[str, str]:
        return {name: package_version(name) for name in ("onnx", "onnxscript", "onnxruntime")}


def _optimization(bundle) -> str:
    """The ONNX Runtime graph-optimisation level the bundle was verified with ("all" unless it says otherwise)."""
    return bundle.manifest.get("target_details", {}).get("ort_graph_optimization", "all")


TARGET = OnnxTarget()


def _finalise(path: Path, integer_weights: bool = False) -> int:
    """Drop the exporter's per-node debug metadata and, for QDQ models, store quantized weights as integers.

    The dynamo exporter annotates every node with its Python stack trace, FX node and module path
    (``pkg.torch.onnx.*``, ``namespace``): 0.48 MB of NAFNet mobile's 6.6 MB fp32 model and 1.6 MB of
    its int8 one, with this machine's file paths in them. Runtimes never read them.

    Returns:
        How many weights are stored as integers (see :mod:`.onnx_qdq`).
    """
    import onnx

    from edgeir.targets.onnx.qdq import fold_weight_quantization

    model = onnx.load(str(path))
    for node in model.graph.node:
        kept = [p for p in node.metadata_props if not (p.key.startswith("pkg.torch.onnx.") or p.key == "namespace")]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    folded = fold_weight_quantization(model) if integer_weights else 0
    onnx.save(model, str(path))
    return folded
