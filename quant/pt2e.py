"""ExecuTorch int8: PT2E with XNNPACKQuantizer (static, per-channel symmetric weights).

PTQ: ``torch.export`` -> ``prepare_pt2e`` -> calibration batches -> ``convert_pt2e``. QAT:
``prepare_qat_pt2e`` on a graph captured with a dynamic batch, edgeir's training loop, then
``convert_pt2e``. The converted graph (quantize/dequantize pairs around float ops) is both what
the target lowers to XNNPACK and the fake-quant model the artifact is checked against.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from edgeir.quantization import Calibration, QuantEngine, QuantizedProgram, Trainer
from edgeir.quantize import frozen

log = logging.getLogger(__name__)

#: aten operators whose patterns are quantized (with their fused activations, as XNNPACKQuantizer annotates them).
QUANTIZED_OPS = ("conv2d", "linear")


def keep_float_filter(keep_float: tuple[str, ...]):
    """Node filter: False for nodes inside a module named in ``keep_float`` (or below it)."""

    def quantize_node(node) -> bool:
        stack = node.meta.get("nn_module_stack") or {}
        for value in stack.values():
            qualified = str(value[0]).replace("L['self'].", "")
            if any(qualified == name or qualified.startswith(name + ".") for name in keep_float):
                return False
        return True

    return quantize_node


class PT2EXnnpackEngine(QuantEngine):
    name = "pt2e-xnnpack"
    schemes = ("int8",)

    def availability(self) -> tuple[bool, str]:
        ok = importlib.util.find_spec("executorch") is not None and importlib.util.find_spec("torchao") is not None
        return ok, "" if ok else "executorch and torchao are needed for PT2E quantization"

    def register_ops(self) -> None:
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed ops)

    def _quantizer(self, qat: bool, keep_float: tuple[str, ...]):
        import torch
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        config = get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
        # int8 where the weights are: convolutions and linear layers (their inputs and outputs). The
        # global config also quantizes element-wise products and means; in a normalised attention
        # (AnyIR: rsqrt(mean(q * q))) a product quantized to zero on flat photo regions becomes
        # rsqrt(1e-24) and the logits overflow to inf/NaN (seen at the first QAT step on photo crops).
        quantizer = XNNPACKQuantizer()
        for op in QUANTIZED_OPS:
            quantizer.set_operator_type(getattr(torch.ops.aten, op).default, config)
        if keep_float:
            quantizer.set_filter_function(keep_float_filter(keep_float))
        return quantizer

    def quantize(self, program, scheme: str, calibration: Calibration, hints, qat_steps: int = 0,
                 trainer: Trainer | None = None) -> QuantizedProgram:
        import torch
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

        example = program.example_inputs()
        module = program.module.eval()
        details: dict[str, Any] = {"quantizer": "XNNPACKQuantizer", "operators": list(QUANTIZED_OPS),
                                   "weights": "int8 per-channel symmetric",
                                   "activations": "int8 per-tensor affine (static)",
                                   "kept_float": list(hints.keep_float)}
        if qat_steps > 0:
            if trainer is None:
                raise ValueError("QAT needs a trainer")
            # A batch of two with a dynamic batch dimension: training takes batches of any size.
            batch = torch.export.Dim("batch", min=1, max=1024)
            doubled = tuple(torch.cat([x, x]) for x in example)
            captured = torch.export.export(module, doubled, strict=False,
                                           dynamic_shapes=tuple({0: batch} for _ in example))
            prepared = prepare_qat_pt2e(captured.module(), self._quantizer(True, hints.keep_float))
            for parameter in prepared.parameters():
                parameter.requires_grad_(parameter.is_floating_point())
            # Observers start from the calibration crops, not from the first training batch alone.
            with torch.no_grad():
                for degraded, _ in calibration.batches:
                    prepared(degraded)
            details["qat"] = trainer(prepared, qat_steps)
            move_exported_model_to_eval(prepared)
        else:
            captured = torch.export.export(module, example, strict=False)
            prepared = prepare_pt2e(captured.module(), self._quantizer(False, hints.keep_float))
            with torch.no_grad():
                for degraded, _ in calibration.batches:
                    for item in degraded.split(1):
                        prepared(item)
        converted = convert_pt2e(prepared)
        # Re-captured at the program's exact shapes: what the target lowers and the bundle keeps.
        static = frozen(torch.export.export(converted, example, strict=False).module())
        return QuantizedProgram(export_module=static, fakequant=static, details=details)


ENGINE = PT2EXnnpackEngine()
