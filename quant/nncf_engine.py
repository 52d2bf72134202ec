"""ONNX int8: NNCF (PTQ and QAT) on the PyTorch program, stripped to native fake-quant ops.

``nncf.quantize`` inserts NNCF's FakeQuantize modules (calibrated on the named batches); QAT trains
that model with edgeir's loop. ``nncf.strip(..., StripFormat.NATIVE)`` then leaves
``torch.fake_quantize_per_*_affine`` ops, which the TorchScript ONNX exporter (opset 17) writes as
QuantizeLinear/DequantizeLinear pairs that ONNX Runtime runs. OpenVINO's own FakeQuantize ops,
which a plain export would contain, do not load in ONNX Runtime (see NOTES.md).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgeir.quantization.scheme import QuantEngine, QuantizedProgram, Trainer

if TYPE_CHECKING:
    import torch


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


def release_freed_memory(*inputs):
    """Return the heap pages freed since the last call to the OS; returns ``inputs`` unchanged.

    Called before each calibration forward. NNCF keeps a few hundred small statistic tensors per
    forward, and glibc's allocator places them above the forward's large, already freed
    activations, so the heap can never shrink from the top: resident memory grew by about one
    forward's activations per calibration sample (FlexIR ``mobile``, 32 crops: 5.5 GB at 64x64,
    killed at 24 GB at 128x128; ``malloc_trim`` keeps it at one forward). A no-op off glibc.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
    return inputs


@functools.cache
def _glibc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def native_quantizers(model) -> int:
    """Replace every fake-quantize module by a plain ``torch.fake_quantize_*`` call; returns how many.

    ``nncf.strip(NATIVE)`` leaves ``torch.ao`` FakeQuantize modules (whose ``observer_enabled`` flag
    check is a data-dependent branch ``torch.export`` refuses) and some of NNCF's own quantizers (whose
    export path is a Python autograd function). The replacement computes the same fake quantization
    (NNCF's ``get_parameters_for_torch_fq`` / the FakeQuantize's scale and zero point) with no
    branches, so the model exports with ``torch.export``: the shape arithmetic stays symbolic and the
    NNCF hooks fire on the same operator calls as in eager mode.
    """
    import numpy as np
    import torch
    from nncf.torch.quantization.layers import BaseQuantizer

    class NativeFakeQuantize(torch.nn.Module):
        is_fake_quantize = True

        def __init__(self, q_min, q_max, scale, zero_point, axis) -> None:
            super().__init__()
            self.q_min, self.q_max, self.axis = int(q_min), int(q_max), axis
            self.register_buffer("scale", scale.detach().float().reshape(-1).clone())
            self.register_buffer("zero_point", zero_point.detach().to(torch.int32).reshape(-1).clone())

        def forward(self, x):
            if not x.is_floating_point():
                return x
            if self.axis is not None:
                return torch.fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.axis,
                                                              self.q_min, self.q_max)
            return torch.fake_quantize_per_tensor_affine(x, self.scale[0], self.zero_point[0], self.q_min, self.q_max)

    def replacement(child):
        if isinstance(child, BaseQuantizer):
            q_min, q_max, scale, zero_point = child.get_parameters_for_torch_fq()
            axis = int(np.argmax(child.scale_shape)) if child.per_channel else None
            return NativeFakeQuantize(q_min, q_max, scale, zero_point, axis)
        if isinstance(child, torch.ao.quantization.FakeQuantizeBase):
            per_channel = child.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
            return NativeFakeQuantize(child.quant_min, child.quant_max, child.scale, child.zero_point,
                                      int(child.ch_axis) if per_channel else None)
        return None

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            native = replacement(child)
            if native is not None:
                setattr(parent, name, native)
                count += 1
    return count


QUANTIZED_OPERATIONS = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                                  "conv_transpose3d", "linear"})


#: Largest depthwise kernel (height x width) quantized for ONNX Runtime.
DEPTHWISE_INT8_MAX_TAPS = 9


def large_depthwise(weight) -> bool:
    """Whether ``weight`` is a depthwise convolution's with a kernel larger than 3x3.

    ONNX Runtime's integer depthwise kernel is slower than its float one there: over 32 channels at
    256x256, ``QLinearConv`` with its converts took 1.2x the float time at 5x5 and 1.9x at 7x7 (3x3:
    1.0-1.2x; ``bench/ort_depthwise_int8.py``), and AnyIR ``mobile`` (22 7x7 layers) ran int8 at 1.00x
    fp32 with them quantized, 0.90x with them float (one interleaved run). Float costs no accuracy.
    """
    return weight is not None and weight.dim() == 4 and weight.shape[1] == 1 and weight.shape[0] > 1 and \
        weight.shape[2] * weight.shape[3] > DEPTHWISE_INT8_MAX_TAPS


def ignored_operations(module, example, keep_float: tuple[str, ...]) -> list[str]:
    """NNCF names of the operations left float: all but convolutions and linear layers, those
    inside the modules ``keep_float`` names, and depthwise convolutions larger than 3x3
    (:func:`large_depthwise`).

    As with the PT2E engines, only convolutions and linear layers are quantized (their inputs and
    weights). NNCF's default also quantizes element-wise arithmetic, which inside a normalisation is
    fatal: a quantized ``sqrt(var + eps)`` rounds to zero for a flat region and the division gives
    NaN (DiffIR's first QAT step; on AnyIR the norm statistics cost 0.4-0.6 dB PSNR).
    NNCF names operations by the forward calls that reach them (``E/0/conv2d/0``), not by module path,
    so weighted operations and the kept modules are found through their weights
    (``model.condition.E.0.weight``).
    """
    from nncf.torch import wrap_model

    from edgeir.recipe import in_kept_module

    graph = wrap_model(module, example if len(example) > 1 else example[0], trace_parameters=True).get_graph()
    parameters = dict(module.named_parameters())
    ignored = []
    for node in graph.get_all_nodes():
        sources = [edge.from_node.node_name for edge in graph.get_input_edges(node)]
        if not sources:
            continue  # model inputs and parameters: not operations
        weights = [source for source in sources if source.endswith(".weight")]
        quantized = node.node_type in QUANTIZED_OPERATIONS and weights and \
            not any(in_kept_module(weight.rsplit(".", 1)[0], keep_float) for weight in weights) and \
            not any(large_depthwise(parameters.get(weight)) for weight in weights)
        if not quantized:
            ignored.append(node.node_name)
    return ignored


def quantize_layer_outputs(model, samples: Sequence[tuple], keep_float: tuple[str, ...] = ()) -> int:
    """Fake-quantize the output of every convolution and linear layer (uint8, per tensor); returns how many.

    NNCF puts a quantizer on each layer's input and weights but none on its output when the next
    operation is float, so the exported QDQ model has ``DQ -> Conv`` with a float output, and ONNX
    Runtime's QDQ fusion (``DQ(x), DQ(w) -> Conv -> Q`` into ``QLinearConv`` / ``QLinearMatMul``,
    integer kernels) never matches: every Conv ran in float, with the quantize/dequantize pairs
    only adding time. With an output quantizer each layer fuses. The ranges are the min/max of the
    layer's output over the calibration ``samples`` (asymmetric uint8, the activation type ONNX
    Runtime's x86 integer kernels prefer). The quantizers are forward hooks, so module paths (which
    NNCF's own quantizers are keyed by) do not change; they are part of the fake-quant model the
    artifact is verified against. A layer whose output NNCF already quantizes (the input quantizer
    of the next layer, on this one's output) gets none: a second quantizer would only requantize
    the tensor, one more pass over it.
    """
    import torch

    from edgeir.recipe import in_kept_module

    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear))
              and not in_kept_module(name, keep_float)]
    ranges: dict[str, list[float]] = {}

    def observe(name):
        def hook(module, inputs, output):
            low, high = float(output.min()), float(output.max())
            seen = ranges.setdefault(name, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)
        return hook

    # A quantizer NNCF put on a layer's output runs last inside the layer's forward: the layer then
    # returns the very tensor the latest quantizer returned.
    latest: list[torch.Tensor | None] = [None]
    already_quantized: set[str] = set()

    def note_quantized(module, inputs, output):
        latest[0] = output

    def note_layer(name):
        def hook(module, inputs, output):
            if output is latest[0]:
                already_quantized.add(name)
        return hook

    quantizers = [m for m in model.modules() if getattr(m, "is_fake_quantize", False)]
    handles = [m.register_forward_hook(observe(name)) for name, m in layers]
    handles += [m.register_forward_hook(note_quantized) for m in quantizers]
    handles += [m.register_forward_hook(note_layer(name)) for name, m in layers]
    with torch.no_grad():
        for sample in samples:
            model(*sample)
            latest[0] = None
    for handle in handles:
        handle.remove()
    count = 0
    for name, module in layers:
        if name not in ranges or name in already_quantized:
            continue  # not reached by this program, or NNCF quantizes its output
        low, high = min(ranges[name][0], 0.0), max(ranges[name][1], 0.0)
        scale = max(high - low, 1e-8) / 255.0
        zero_point = int(min(255, max(0, round(-low / scale))))

        def fake_quantize(module, inputs, output, scale=scale, zero_point=zero_point):
            return torch.fake_quantize_per_tensor_affine(output, scale, zero_point, 0, 255)

        module.register_forward_hook(fake_quantize)
        count += 1
    return count


class NNCFEngine(QuantEngine):
    name = "nncf"
    schemes = ("int8",)

    def availability(self) -> tuple[bool, str]:
        ok = importlib.util.find_spec("nncf") is not None
        return ok, "" if ok else "the nncf package is needed for ONNX int8"

    def quantize(self, program, scheme: str, calibration: Sequence[tuple[torch.Tensor, ...]], hints,
                 qat_steps: int = 0, trainer: Trainer | None = None) -> QuantizedProgram:
        import nncf
        import torch
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

        use_reference_kernels()
        example = program.example_inputs()
        module = program.module.eval()
        samples = [tuple(x[index:index + 1] for x in inputs) for inputs in calibration
                   for index in range(inputs[0].shape[0])]
        ignored = nncf.IgnoredScope(names=ignored_operations(module, example, hints.keep_float), validate=False)
        # Per-tensor activations everywhere: NNCF's CPU setup quantizes a depthwise convolution's input
        # per channel, which no ONNX Runtime integer kernel takes (the layer before it then stayed a
        # float Conv between QuantizeLinear / DequantizeLinear pairs: 12 of NAFNet mobile's 82).
        per_tensor = AdvancedQuantizationParameters(activations_quantization_params=QuantizationParameters(
            per_channel=False))
        kwargs: dict[str, Any] = {"subset_size": len(samples), "ignored_scope": ignored,
                                  "advanced_parameters": per_tensor}
        # A tuple item is passed to the model as its positional arguments.
        dataset = nncf.Dataset(samples, transform_func=lambda sample: release_freed_memory(*sample))
        quantized = nncf.quantize(module, dataset, **kwargs)
        details: dict[str, Any] = {"quantizer": f"nncf {nncf.__version__} (torch backend)",
                                   "operators": ["convolution", "linear"],
                                   "weights": "int8 per-channel symmetric", "activations": "int8 per-tensor",
                                   "kept_float": list(hints.keep_float),
                                   "float_layers": "depthwise convolutions larger than 3x3 (ONNX Runtime's integer "
                                                   "depthwise kernel is slower than its float one there)"}
        if qat_steps > 0:
            if trainer is None:
                raise ValueError("QAT needs a trainer")
            for parameter in quantized.parameters():
                parameter.requires_grad_(parameter.is_floating_point())
            details["qat"] = trainer(quantized, qat_steps)
        quantized.eval()
        stripped = nncf.strip(quantized, do_copy=True, strip_format=nncf.StripFormat.NATIVE,
                              example_input=example[0] if len(example) == 1 else example)
        stripped.eval()
        details["native_quantizers"] = native_quantizers(stripped)
        details["output_quantizers"] = quantize_layer_outputs(stripped, samples, hints.keep_float)
        details["placement"] = ("inputs, weights (NNCF) and outputs (uint8, calibrated min/max) of convolutions and "
                                "linear layers: each layer fuses into an ONNX Runtime integer kernel")
        with torch.no_grad():
            stripped(*example)
        return QuantizedProgram(export_module=stripped, fakequant=stripped, details=details)


ENGINE = NNCFEngine()
