"""Quantization / precision schemes and the engine contract the ``edgeir.quant`` package fulfils.

A *scheme* (``fp32``, ``int8``...) is registered through the ``edgeir.quant`` entry-point group.
An *engine* turns a float program into what a target exports for an integer scheme, and keeps
the fake-quant model (quantization simulated in float PyTorch) that the artifact must match.
Targets say which engine serves which scheme; this module names no target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeir.recipe import Program, QuantHints


@dataclass(frozen=True)
class QuantScheme:
    """One way of storing and computing a model's numbers.

    Args:
        name: Scheme name used in flags and bundle names (``fp32``, ``fp16``, ``int8``).
        summary: One line for ``edgeir list``.
        verify_threshold_db: Lowest artifact-vs-reference PSNR that ``verify`` accepts for it.
        compute_dtype: Float dtype of weights and activations ("float32", "float16"); None for
            integer schemes.
        fakequant_tolerance_db: For schemes an engine simulates in PyTorch: lowest PSNR of the
            artifact against its own fake-quant model. Below it the artifact is wrong (a lowering
            bug), which is an error, not a warning. None for float schemes.
        trainable: Whether quantization-aware fine-tuning (``--qat-steps``) applies.
        reference_weights_threshold_db: For weight-compression schemes: lowest PSNR of the artifact against
            the reference rebuilt with the artifact's own (decompressed) weights, which ``verify`` checks
            instead of ``verify_threshold_db`` when the target supplies them (``Target.reference_weights``);
            the compression's cost (that reference against the float one) is then reported, not checked.
            None for schemes that store the exported weights.
    """

    name: str
    summary: str
    verify_threshold_db: float
    compute_dtype: str | None = "float32"
    fakequant_tolerance_db: float | None = None
    trainable: bool = False
    reference_weights_threshold_db: float | None = None


@dataclass(frozen=True)
class Calibration:
    """The data a quantization run saw: named, never random tensors.

    Args:
        source: Where the clean images came from ("built-in photos (training split)", a folder).
        task: Degradation applied to them.
        batches: Calibration batches of ``(degraded, clean)``; degraded is what the program takes.
        description: One line for the manifest.
    """

    source: str
    task: str
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = field(repr=False)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest form (without the tensors)."""
        first = self.batches[0][0] if self.batches else None
        return {"source": self.source, "task": self.task, "batches": len(self.batches),
                "batch_shape": list(first.shape) if first is not None else None, "description": self.description}


@dataclass
class QuantizedProgram:
    """An engine's result for one program.

    Attributes:
        export_module: What the target exports (a PT2E-converted graph, an NNCF-stripped model...).
        fakequant: The fake-quant model: quantization simulated in float PyTorch. The artifact
            must match it; ``verify`` compares artifact, fake-quant and float three ways.
        details: Facts for the manifest (quantized layers, layers kept in float, QAT report).
    """

    export_module: nn.Module
    fakequant: nn.Module | None
    details: dict[str, Any] = field(default_factory=dict)


#: ``train(module, steps, batches) -> report`` : the QAT loop an engine calls on its prepared model.
Trainer = Callable[["nn.Module", int], dict[str, Any]]


class QuantEngine(ABC):
    """Quantizes programs for one family of targets.

    Attributes:
        name: Recorded in the manifest (``pt2e-xnnpack``, ``nncf``...).
        schemes: Schemes it implements.
        post_export: True for engines that act on the converted artifact (weight compression)
            instead of on the PyTorch program; they implement :meth:`compress`.
    """

    name: str = ""
    schemes: tuple[str, ...] = ()
    post_export: bool = False
    fakequant_suffix: str = ".pt2"

    def quantize(self, program: Program, scheme: str, calibration: Sequence[tuple[torch.Tensor, ...]],
                 hints: QuantHints, qat_steps: int = 0, trainer: Trainer | None = None) -> QuantizedProgram:
        """Quantize ``program.module`` (PTQ when ``qat_steps`` is 0, else QAT through ``trainer``).

        Args:
            calibration: The program's inputs for each calibration batch (the degraded photos,
                and whatever else the program takes, filled as an app fills it).
        """
        raise NotImplementedError(f"engine {self.name} quantizes the exported artifact, not the program")

    def compress(self, artifact: Any, scheme: str) -> Any:
        """Compress a converted artifact (weight-only schemes)."""
        raise NotImplementedError(f"engine {self.name} quantizes programs, not artifacts")

    def save_fakequant(self, module: nn.Module, example: tuple[torch.Tensor, ...], path: str) -> None:
        """Save a fake-quant program into the bundle (default: a ``torch.export`` archive)."""
        import torch

        torch.export.save(torch.export.export(module, example, strict=False), path)

    def load_fakequant(self, path: str) -> nn.Module:
        """Load a fake-quant program saved by the pipeline (``torch.export`` archive)."""
        import torch

        self.register_ops()
        return torch.export.load(path).module()

    def register_ops(self) -> None:
        """Import what registers the custom operators its fake-quant graphs use (nothing by default)."""
        return None

    @abstractmethod
    def availability(self) -> tuple[bool, str]:
        """``(ok, reason)``: whether its SDK is installed."""
