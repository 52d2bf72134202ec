"""Static int8 (W8A8) through PT2E, one engine per backend quantizer: XNNPACK and Core ML.

PTQ: ``torch.export`` -> ``prepare_pt2e`` -> calibration batches -> ``convert_pt2e``. QAT:
``prepare_qat_pt2e`` on a graph captured with a dynamic batch, edgeir's training loop, then
``convert_pt2e``. The converted graph (quantize/dequantize pairs around float ops) is both what
the target lowers (to XNNPACK, to Core ML through coremltools or the ExecuTorch Core ML delegate)
and the fake-quant model the artifact is checked against.

Both engines quantize the same operators, convolutions and linear layers (their inputs, weights
and outputs), and leave the modules a method names in ``QuantHints.keep_float`` in float.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgeir.quantization.scheme import QuantEngine, QuantizedProgram, Trainer
from edgeir.quantization.stage import frozen
from edgeir.recipe import in_kept_module

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: aten operators whose patterns are quantized (with their fused activations, as the quantizers annotate them).
QUANTIZED_OPS = ("conv2d", "linear")

#: ``build(qat, keep_float, float_node) -> Quantizer``: a backend's PT2E quantizer, configured for QAT or
#: PTQ, leaving in float the modules ``keep_float`` names and the nodes ``float_node`` (if given) accepts.
QuantizerBuilder = Callable[[bool, tuple[str, ...], "Callable[[Any], bool] | None"], Any]
#: ``rewrite(exported, example_inputs) -> (graph_module, records)``: a target's output-equal graph
#: rewrites of the float program, applied before the quantizer annotates it (PTQ).
GraphRewrite = Callable[[Any, Sequence[Any]], tuple[Any, list[dict[str, Any]]]]


def keep_float_filter(keep_float: tuple[str, ...], float_node: Callable[[Any], bool] | None = None):
    """Node filter: False for nodes inside a module named in ``keep_float`` (or below it), and for
    those ``float_node`` accepts."""

    def quantize_node(node) -> bool:
        if float_node is not None and float_node(node):
            return False
        stack = node.meta.get("nn_module_stack") or {}
        for value in stack.values():
            if in_kept_module(str(value[0]).replace("L['self'].", ""), keep_float):
                return False
        return True

    return quantize_node


def xnnpack_quantizer(qat: bool, keep_float: tuple[str, ...], float_node: Callable[[Any], bool] | None = None):
    """``XNNPACKQuantizer`` for convolutions and linear layers: int8 per-channel symmetric weights,
    int8 per-tensor affine activations."""
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
    if keep_float or float_node is not None:
        quantizer.set_filter_function(keep_float_filter(keep_float, float_node))
    return quantizer


#: The Core ML quantizer's configuration (coremltools ``LinearQuantizerConfig``): int8 weights, symmetric per
#: output channel; uint8 activations (the only integer activation type it offers), symmetric: zero point 0
#: for non-negative tensors, 128 for the others.
COREML_CONFIG = {"quantization_scheme": "symmetric", "weight_dtype": "qint8", "weight_per_channel": True,
                 "activation_dtype": "quint8"}


#: Names of ``CoreMLQuantizer``'s annotators for weighted layers (its other ones: add, mul, matmul, pools).
#: In its registry's order: fused patterns first, so they claim their layers.
WEIGHTED_ANNOTATORS = ("conv_act", "conv_bn_act", "conv_bn", "conv",
                       "linear_act", "linear_bn_act", "linear_bn", "linear")
#: aten names of the activations ``CoreMLQuantizer`` fuses into a conv/linear pattern (in place or not).
FUSED_ACTIVATIONS = frozenset({"relu", "relu6", "leaky_relu", "silu", "elu", "celu", "selu", "mish", "hardtanh",
                               "hardswish", "hardsigmoid", "gelu", "sigmoid", "log_sigmoid", "tanh"})


def weighted_annotators(graph_module) -> list[str]:
    """The weighted-layer annotators of ``CoreMLQuantizer`` that can match ``graph_module``.

    Each annotator exports its patterns (up to 78: three conv ranks, fifteen activations, in
    place or not) before matching: ``conv_act`` and ``conv_bn_act`` took 49 s of AnyIR tiny's
    ``prepare_pt2e`` on a 2-core host. One whose pattern has no node in the graph (no batch
    norm, no activation right after a layer) is skipped, which changes no annotation.
    """
    import torch

    layers = {torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default,
              torch.ops.aten.linear.default}
    has_bn = has_act = False
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0].rstrip("_")
        has_bn = has_bn or "batch_norm" in name
        if node.target in layers and len(node.users) == 1:
            user = next(iter(node.users))
            target = getattr(user.target, "__name__", str(user.target)).split(".")[0].rstrip("_")
            has_act = has_act or (user.op == "call_function" and target in FUSED_ACTIVATIONS)
    return [name for name in WEIGHTED_ANNOTATORS
            if (has_bn or "_bn" not in name) and (has_act or not name.endswith("_act"))]


def coreml_quantizer(qat: bool, keep_float: tuple[str, ...], float_node: Callable[[Any], bool] | None = None):
    """``CoreMLQuantizer`` (ExecuTorch's Core ML backend) for convolutions and linear layers.

    Only its weighted-layer patterns run (conv / linear, with a following batch norm or
    activation), with the ``keep_float`` filter; its element-wise and pooling patterns do not
    (see :func:`xnnpack_quantizer` on products). Its fake-quantizers observe in PTQ and QAT alike
    (``qat`` changes nothing in the config): they observe calibration, and train with the weights.
    """
    from coremltools.optimize.torch.quantization.quantization_config import LinearQuantizerConfig
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer
    from executorch.backends.apple.coreml.quantizer._annotation_config import AnnotationConfig
    from executorch.backends.apple.coreml.quantizer._coreml_quantizer import _AnnotationPatternRegistry

    # The two private imports (executorch 1.4.1): CoreMLQuantizer offers no per-pattern selection.

    class WeightedCoreMLQuantizer(CoreMLQuantizer):
        """The global config on conv / linear patterns only, through the ``keep_float`` filter."""

        def annotate(self, model):
            config = AnnotationConfig.from_quantization_config(self._config.global_config)
            annotators = _AnnotationPatternRegistry.get_annotators()
            for name in weighted_annotators(model):
                annotators[name](model, config, keep_float_filter(keep_float, float_node))
            return model

    return WeightedCoreMLQuantizer(LinearQuantizerConfig.from_dict({"global_config": COREML_CONFIG}))


class PT2EEngine(QuantEngine):
    """int8 W8A8 through PT2E with one backend's quantizer.

    Args:
        name: Engine name recorded in the manifest (``pt2e-xnnpack``, ``pt2e-coreml``).
        build_quantizer: Makes the quantizer for QAT or PTQ with the modules to keep in float; it
            imports its SDK when called, so the engine itself is cheap to import.
        details: What the quantizer quantizes, recorded per program in the manifest.
        requires: Import names the engine needs (its availability).
        rewrite: The target's output-equal rewrites of the float program, applied before the
            quantizer annotates it (PTQ; see :meth:`with_rewrite`).
        float_node: Nodes of the rewritten graph to leave in float (layers a rewrite made out of
            arithmetic).
    """

    schemes = ("int8",)

    def __init__(self, name: str, build_quantizer: QuantizerBuilder, details: Mapping[str, Any],
                 requires: tuple[str, ...], rewrite: GraphRewrite | None = None,
                 float_node: Callable[[Any], bool] | None = None) -> None:
        self.name = name
        self._build_quantizer = build_quantizer
        self._details = dict(details)
        self._requires = requires
        self._rewrite = rewrite
        self._float_node = float_node

    def with_rewrite(self, rewrite: GraphRewrite, float_node: Callable[[Any], bool] | None = None) -> PT2EEngine:
        """This engine, quantizing the float program as ``rewrite`` leaves it (PTQ).

        A target whose lowering rewrites the graph (the ExecuTorch target's XNNPACK passes) hands
        its rewrites here: rewrites exact in float are not exact around quantize ops, so after
        quantization they cannot run, and what they would have removed stays in the artifact. QAT
        trains the graph as captured (with a dynamic batch, and trainable weights a fold would
        turn into constants), so it quantizes the unrewritten graph.
        """
        return PT2EEngine(self.name, self._build_quantizer, self._details, self._requires, rewrite, float_node)

    def availability(self) -> tuple[bool, str]:
        missing = [name for name in self._requires if importlib.util.find_spec(name) is None]
        if not missing:
            return True, ""
        return False, f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} needed for engine {self.name}"

    def register_ops(self) -> None:
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed ops)

    def quantize(self, program, scheme: str, calibration: Sequence[tuple[torch.Tensor, ...]], hints,
                 qat_steps: int = 0, trainer: Trainer | None = None) -> QuantizedProgram:
        import torch
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

        example = program.example_inputs()
        module = program.module.eval()
        details: dict[str, Any] = {**self._details, "kept_float": list(hints.keep_float)}
        # The float program's outputs on the first calibration batch, before QAT can move any weight.
        samples = [tuple(x[index:index + 1] for x in calibration[0]) for index in range(calibration[0][0].shape[0])]
        with torch.no_grad():
            expected = [module(*inputs) for inputs in samples]
        if qat_steps > 0:
            if trainer is None:
                raise ValueError("QAT needs a trainer")
            # A batch of two with a dynamic batch dimension: training takes batches of any size.
            batch = torch.export.Dim("batch", min=1, max=1024)
            doubled = tuple(torch.cat([x, x]) for x in example)
            captured = torch.export.export(module, doubled, strict=False,
                                           dynamic_shapes=tuple({0: batch} for _ in example))
            prepared = prepare_qat_pt2e(captured.module(), self._build_quantizer(True, hints.keep_float, None))
            for parameter in prepared.parameters():
                parameter.requires_grad_(parameter.is_floating_point())
            # Observers start from the calibration crops, not from the first training batch alone.
            with torch.no_grad():
                for inputs in calibration:
                    prepared(*inputs)
            details["qat"] = trainer(prepared, qat_steps)
            move_exported_model_to_eval(prepared)
        else:
            captured = torch.export.export(module, example, strict=False)
            graph_module = captured.module()
            if self._rewrite is not None:
                graph_module, records = self._rewrite(captured, example)
                details["rewritten_before_quantization"] = {r["pass"]: r["rewrites"] for r in records if r["rewrites"]}
            prepared = prepare_pt2e(graph_module, self._build_quantizer(False, hints.keep_float, self._float_node))
            with torch.no_grad():
                for inputs in calibration:
                    for index in range(inputs[0].shape[0]):
                        prepared(*(x[index:index + 1] for x in inputs))
        # The converted graph is what the target lowers and the bundle keeps; both capture it at the
        # program's exact shapes themselves (a QAT graph was captured with a dynamic batch).
        graph = convert_pt2e(prepared)
        details["quantized_layers"] = quantized_layer_count(graph)
        details["fakequant_vs_float_psnr_db"] = agreement_db(graph, samples, expected,
                                                          [spec.kind for spec in program.outputs])
        static = frozen(graph)
        return QuantizedProgram(export_module=static, fakequant=static, details=details)


def agreement_db(fakequant, samples: Sequence[tuple[torch.Tensor, ...]], expected: Sequence[Any],
                 kinds: Sequence[str]) -> float:
    """Lowest PSNR (dB) of the fake-quant program's outputs against the float program's over ``samples``.

    The quantization error itself, measured where PyTorch runs: on hosts that cannot run the
    artifact (Core ML on Linux) it is the accuracy figure the export can still record. Image
    outputs (``kinds``) are compared as pixels, the others as vectors.
    """
    import torch

    from edgeir.evaluation.metrics import psnr, vector_psnr

    values = []
    with torch.no_grad():
        for inputs, reference in zip(samples, expected, strict=True):
            got = fakequant(*inputs)
            got, reference = (got, reference) if isinstance(got, (tuple, list)) else ((got,), (reference,))
            for kind, g, r in zip(kinds, got, reference, strict=True):
                values.append((psnr if kind == "image" else vector_psnr)(g.numpy(), r.numpy()))
    return round(min(values), 2)


def quantized_layer_count(graph_module) -> dict[str, int]:
    """Convolutions and linear layers of a converted graph whose weight is dequantized from int8, and the others.

    A converted PT2E graph keeps float ops; a quantized layer's weight input is the output of a
    ``dequantize_per_channel`` (or ``_per_tensor``) node.
    """
    import torch

    layers = {torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default,
              torch.ops.aten.linear.default}
    counts = {"int8": 0, "float": 0}
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and node.target in layers:
            weight = node.args[1]
            counts["int8" if is_dequantized(weight) else "float"] += 1
    return counts


def is_dequantized(node) -> bool:
    """Whether fx ``node`` is the output of a quantized_decomposed ``dequantize_*`` op."""
    return getattr(node, "op", None) == "call_function" and "dequantize" in str(node.target)


XNNPACK_ENGINE = PT2EEngine(
    "pt2e-xnnpack", xnnpack_quantizer,
    {"quantizer": "XNNPACKQuantizer", "operators": list(QUANTIZED_OPS), "weights": "int8 per-channel symmetric",
     "activations": "int8 per-tensor affine (static)"},
    requires=("executorch", "torchao"))

COREML_ENGINE = PT2EEngine(
    "pt2e-coreml", coreml_quantizer,
    {"quantizer": "CoreMLQuantizer", "operators": list(QUANTIZED_OPS), "weights": "int8 per-channel symmetric",
     "activations": "uint8 per-tensor symmetric (static; zero point 0 or 128)"},
    requires=("executorch", "torchao", "coremltools"))

#: The XNNPACK engine, under the name this module has always exported.
ENGINE = XNNPACK_ENGINE
