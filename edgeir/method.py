"""The method contract: what a plugin module exposes as its one frozen ``SPEC``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeir.errors import UnknownNameError
from edgeir.registry import unknown_name_message

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions
    from edgeir.weights.shipped import ShippedWeights


@dataclass(frozen=True)
class IOContract:
    """How a method's model is fed and what it returns; checked by the conformance tests.

    Args:
        in_channels: Channels of the input image.
        out_channels: Channels of the output image.
        scale: Output H/W over input H/W.
        size_multiple: Input H and W must be multiples of this.
        value_range: Range of input and output pixel values.
        color_order: "RGB" or "Y".
        global_ops: Operations whose result depends on the whole input (global pooling, transposed
            attention): tiles then differ from the whole image, and TLC applies.
    """

    in_channels: int = 3
    out_channels: int = 3
    scale: int = 1
    size_multiple: int = 1
    value_range: tuple[float, float] = (0.0, 1.0)
    color_order: str = "RGB"
    global_ops: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        data = asdict(self)
        data["value_range"] = list(self.value_range)
        data["global_ops"] = list(self.global_ops)
        return data


@dataclass(frozen=True)
class Variant:
    """A named configuration of a method.

    Args:
        name: ``paper``, ``mobile``, ``tiny``...
        description: One line: what configuration it is.
        declared_params: Parameter count from the paper or the official code, for the schema
            test; None where there is no reference figure.
    """

    name: str
    description: str
    declared_params: int | None = None


@dataclass(frozen=True)
class MethodSpec:
    """Everything edgeir needs to build, load, and export one restoration method.

    Args:
        name: Method name, lower case (``anyir``).
        summary: One line for ``edgeir list``.
        paper: Citation of the paper the architecture comes from.
        tasks: Supported tasks (``denoise25``, ``allinone3``...).
        variants: Supported variants; ``paper`` and ``tiny`` are required.
        default_task: Task used when none is given.
        build: ``(variant, task) -> nn.Module``, the eager trainable model.
        recipe: ``(model, options) -> ExportRecipe``.
        io: ``(variant, task) -> IOContract``.
        convert_checkpoint: Maps the raw contents of an official checkpoint file to the model's
            state-dict keys (unwrapping and renaming); loading itself is strict and done by edgeir.
        default_variant: Variant used when none is given.
        objective: Optional factory ``objective(model) -> nn.Module`` of the method's training
            objective, used by fine-tuning and quantization-aware training. The returned module is
            called as ``obj(degraded, clean, step, total_steps) -> (loss, logs)`` where ``logs`` is a
            ``dict[str, float]``; its own trainable parameters (e.g. a distillation scorer) join the
            optimiser, and anything frozen (e.g. a teacher) must not require grad. ``None`` means
            edgeir's default (Charbonnier loss on ``model(degraded)``).
        adaptive: Optional early-exit controller for bundles exported with ``--exits``:
            ``adaptive(runner, manifest, threshold) -> run_region``, where ``run_region(x)`` restores
            one program-shaped region ``x`` (1, C, H, W) through the bundle's staged programs,
            choosing its exit itself, and returns ``(restored, facts)``; ``facts`` holds at least
            ``exit``, ``macs`` (spent) and ``full_macs`` (what the deepest exit costs).
            ``edgeir run --adaptive`` uses it.
        weights: The weights the plugin ships (:class:`~edgeir.weights.shipped.ShippedWeights`, one per
            variant and task; see :func:`~edgeir.weights.shipped.weights_table`), loaded when no
            ``--weights`` is given. A TLC form passes its global model's table (same state dict).
    """

    name: str
    summary: str
    paper: str
    tasks: tuple[str, ...]
    variants: tuple[Variant, ...]
    default_task: str
    build: Callable[[str, str], nn.Module]
    recipe: Callable[[nn.Module, RecipeOptions], ExportRecipe]
    io: Callable[[str, str], IOContract]
    convert_checkpoint: Callable[[Mapping[str, Any]], dict[str, torch.Tensor]]
    default_variant: str = "paper"
    objective: Callable[[nn.Module], nn.Module] | None = None
    adaptive: Callable[[Any, Mapping[str, Any], float], Callable[[Any], tuple[Any, dict[str, Any]]]] | None = None
    weights: tuple[ShippedWeights, ...] = ()

    def __post_init__(self) -> None:
        names = self.variant_names
        for required in ("paper", "tiny"):
            if required not in names:
                raise ValueError(f"method '{self.name}' must declare a '{required}' variant")
        if self.default_variant not in names:
            raise ValueError(f"method '{self.name}': default variant '{self.default_variant}' is not declared")
        if self.default_task not in self.tasks:
            raise ValueError(f"method '{self.name}': default task '{self.default_task}' is not declared")

    @property
    def variant_names(self) -> tuple[str, ...]:
        """Names of the declared variants, in declaration order."""
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> Variant:
        """The variant called ``name``.

        Raises:
            UnknownNameError: listing the method's variants.
        """
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise UnknownNameError(unknown_name_message(f"variant of {self.name}", name, list(self.variant_names)))

    def check_task(self, task: str) -> str:
        """Return ``task`` if supported.

        Raises:
            UnknownNameError: listing the method's tasks.
        """
        if task not in self.tasks:
            raise UnknownNameError(unknown_name_message(f"task of {self.name}", task, list(self.tasks)))
        return task

    def build_model(self, variant: str | None = None, task: str | None = None) -> nn.Module:
        """Build the eager model after checking the names (random initialisation)."""
        variant = self.variant(variant or self.default_variant).name
        task = self.check_task(task or self.default_task)
        return self.build(variant, task)

    def shipped_weights(self, variant: str, task: str) -> ShippedWeights | None:
        """The weights this method ships for (variant, task), or None when it ships none."""
        for entry in self.weights:
            if entry.variant == variant and entry.task == task:
                return entry
        return None

    def load_checkpoint(self, model: nn.Module, path: str | Path) -> str:
        """Load an official or edgeir checkpoint into ``model``, strictly.

        Returns:
            The sha256 of the file.

        Raises:
            CheckpointError: if the file is unsafe, unreadable, or its keys or shapes do not fit;
                the message names the keys.
        """
        from edgeir.weights.checkpoint import load_into

        return load_into(model, path, self.convert_checkpoint)
