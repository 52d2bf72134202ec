"""ONNX int8: NNCF (PTQ and QAT) on the PyTorch program, stripped to native fake-quant ops.

``nncf.quantize`` inserts NNCF's FakeQuantize modules (calibrated on the named batches); QAT trains
that model with edgeir's loop. ``nncf.strip(..., StripFormat.NATIVE)`` then leaves
``torch.fake_quantize_per_*_affine`` ops, which the TorchScript ONNX exporter (opset 17) writes as
QuantizeLinear/DequantizeLinear pairs that ONNX Runtime runs. OpenVINO's own FakeQuantize ops,
which a plain export would contain, do not load in ONNX Runtime (see NOTES.md).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from edgeir.quantization import Calibration, QuantEngine, QuantizedProgram, Trainer


def use_reference_kernels() -> None:
    """Run NNCF's fake quantization with its own pure-PyTorch reference functions.

    On first use NNCF compiles a C++ extension (``quantized_functions_cpu``) with a 60 s limit; on a
    busy 2-core host the build times out (ExtensionLoaderTimeoutException) and on a machine without
    a compiler it cannot build at all. NNCF's reference functions have the same signatures and
    results (it is what NNCF tests the extension against); only speed differs, which does not
    matter for calibration and short QAT runs.
    """
    from types import SimpleNamespace

    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU
    from nncf.torch.quantization.reference import torch_executor

    if QuantizedFunctionsCPU._loaded_namespace is None:
        # The eager functions, not NNCF's torch.compile wrappers of them (compiling needs a C++ toolchain too).
        QuantizedFunctionsCPU._loaded_namespace = SimpleNamespace(Quantize_forward=torch_executor.forward,
                                                                  Quantize_backward=torch_executor.backward)


def float_only_fake_quantize(model) -> None:
    """Let every fake-quantize module pass non-float tensors through unchanged.

    NNCF hooks quantizers onto operator calls. Under ``torch.jit.trace`` (the ONNX QDQ export) shape
    arithmetic such as ``h * w`` becomes a traced integer tensor, so a quantizer hooked on a
    multiplication would receive it and fail ("not implemented for 'Long'"); in eager mode that
    arithmetic is on Python ints and no quantizer sees it. Passing integers through keeps the traced
    graph equal to the eager fake-quant model.
    """
    import types

    import torch

    def forward(self, x):
        return x if not x.is_floating_point() else type(self).forward(self, x)

    for module in model.modules():
        if isinstance(module, torch.ao.quantization.FakeQuantizeBase):
            module.forward = types.MethodType(forward, module)


class NNCFEngine(QuantEngine):
    name = "nncf"
    schemes = ("int8",)
    fakequant_suffix = ".pt"

    def save_fakequant(self, module, example, path: str) -> None:
        """TorchScript trace: ``torch.export`` cannot capture NNCF's hooked model (data-dependent guards)."""
        import torch

        with torch.no_grad():
            torch.jit.save(torch.jit.trace(module, example, check_trace=False), path)

    def load_fakequant(self, path: str):
        import torch

        return torch.jit.load(path, map_location="cpu")

    def availability(self) -> tuple[bool, str]:
        ok = importlib.util.find_spec("nncf") is not None
        return ok, "" if ok else "the nncf package is needed for ONNX int8"

    def quantize(self, program, scheme: str, calibration: Calibration, hints, qat_steps: int = 0,
                 trainer: Trainer | None = None) -> QuantizedProgram:
        import nncf
        import torch

        use_reference_kernels()
        example = program.example_inputs()
        module = program.module.eval()
        samples = [item for degraded, _ in calibration.batches for item in degraded.split(1)]
        ignored = nncf.IgnoredScope(names=list(hints.keep_float), validate=False) if hints.keep_float else None
        kwargs: dict[str, Any] = {"subset_size": len(samples)}
        if ignored is not None:
            kwargs["ignored_scope"] = ignored
        quantized = nncf.quantize(module, nncf.Dataset(samples), **kwargs)
        details: dict[str, Any] = {"quantizer": f"nncf {nncf.__version__} (torch backend)",
                                   "weights": "int8 per-channel symmetric", "activations": "int8 per-tensor",
                                   "kept_float": list(hints.keep_float)}
        if qat_steps > 0:
            if trainer is None:
                raise ValueError("QAT needs a trainer")
            for parameter in quantized.parameters():
                parameter.requires_grad_(parameter.is_floating_point())
            details["qat"] = trainer(quantized, qat_steps)
        quantized.eval()
        stripped = nncf.strip(quantized, do_copy=True, strip_format=nncf.StripFormat.NATIVE, example_input=example[0])
        stripped.eval()
        float_only_fake_quantize(stripped)
        with torch.no_grad():
            stripped(*example)
        return QuantizedProgram(export_module=stripped, fakequant=stripped, details=details)


ENGINE = NNCFEngine()
