"""Export recipes: what to export, how an app feeds it, and which rewrites make it exportable.

A recipe is data, not code paths: the target reads its programs, the manifest records its I/O
verbatim so an app knows how to feed the artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a program, as an app must provide or read it.

    Args:
        name: Tensor name in the artifact.
        shape: Shape the program was exported with (batch first).
        dtype: Element type.
        layout: Axis order, e.g. "NCHW".
        kind: "image", "vector" or "mask".
        value_range: Range of the values (images: 0..1).
        color_order: Channel order of images ("RGB", "Y"), "" for non-images.
        scale: Output size over input size along H and W (super-resolution).
        pad_to: H and W must be multiples of this; pad with reflection and crop after.
        source: For an input that is not the photo, where its value comes from: ``""`` the app
            provides it; ``"zeros"`` feed zeros unless there is a reason not to (DiffIR's starting
            vector x_T); ``"program:<name>"`` feed the output of program ``<name>`` run once on the
            whole photo, down-scaled to that program's input size (DiffIR's IPR from ``prior``,
            see :attr:`TileSpec.global_state`). ``edgeir verify`` and ``edgeir run`` fill such
            inputs this way.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: str = "NCHW"
    kind: str = "image"
    value_range: tuple[float, float] = (0.0, 1.0)
    color_order: str = "RGB"
    scale: int = 1
    pad_to: int = 1
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        data = asdict(self)
        data["shape"] = list(self.shape)
        data["value_range"] = list(self.value_range)
        return data


@dataclass(frozen=True)
class DynamicSize:
    """Range of H and W a program accepts where the target supports dynamic shapes."""

    min: int
    max: int
    multiple: int = 1

    def accepts(self, size: int) -> bool:
        """Whether ``size`` is a valid H or W."""
        return self.min <= size <= self.max and size % self.multiple == 0


@dataclass(frozen=True)
class Program:
    """A named entry point of the artifact: a module, its I/O and its shape policy.

    Args:
        name: Method name in the artifact (``forward``, ``exit_3``, ``prior``...).
        module: The eager module to export.
        inputs: Its inputs, in call order.
        outputs: Its outputs, in return order.
        dynamic_hw: H/W range of the image inputs for targets with dynamic shapes; None for a
            program that needs its exact shape (static attention masks, windows).
        metadata: Method facts about the program for the manifest (e.g. an early exit's number,
            parameters and MACs); JSON-serialisable.
    """

    name: str
    module: nn.Module = field(repr=False, compare=False)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dynamic_hw: DynamicSize | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Deterministic inputs of the exported shapes, uniform in each input's value range."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        tensors = []
        for spec in self.inputs:
            low, high = spec.value_range
            tensors.append(torch.rand(spec.shape, generator=generator) * (high - low) + low)
        return tuple(tensors)

    def to_json(self) -> dict[str, Any]:
        """The manifest form (without the module)."""
        return {
            "name": self.name,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "dynamic_hw": asdict(self.dynamic_hw) if self.dynamic_hw else None,
            **({"metadata": dict(self.metadata)} if self.metadata else {}),
        }


@dataclass(frozen=True)
class TileSpec:
    """How an app should cut photos larger than the program's shape (see :mod:`edgeir.runtime.tiling`).

    Tiles of ``size`` overlap by at least ``overlap`` pixels and are blended with linear ramps;
    a program with dynamic H/W may take larger tiles, still multiples of ``multiple``.

    Args:
        size: (H, W) of one tile: the exported program's shape.
        overlap: Least overlap of neighbouring tiles, in input pixels.
        multiple: Tile H and W must be multiples of this.
        global_state: How tiles get state that depends on the whole photo. ``"none"``: tiles are
            independent (what the tiler does today; methods with global statistics, like AnyIR's
            transposed attention, then differ slightly from a whole-image run). Reserved for
            methods that need it: ``"program:<name>"`` would mean running program ``<name>`` once
            on the photo down-scaled to the tile size (DiffIR's IPR prior) and feeding its output
            to every tile as a second input; ``"tlc"`` would mean the exported program already
            uses local windows (TLC) and tiles need nothing else. Of these, only
            ``"none"`` and ``"program:<name>"`` are implemented (DiffIR uses the latter: the tile
            program is the one with an input whose ``TensorSpec.source`` is the same string);
            ``edgeir run`` refuses a bundle that asks for another.
    """

    size: tuple[int, int]
    overlap: int
    multiple: int = 1
    global_state: str = "none"

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        return {"size": list(self.size), "overlap": self.overlap, "multiple": self.multiple,
                "global_state": self.global_state}


@dataclass(frozen=True)
class Rewrite:
    """An export-time module transform.

    Args:
        name: Short identifier recorded in the manifest.
        description: One line saying what it replaces and why.
        apply: Returns a new module; must not modify its argument.
        changes_output: False when the eager output must stay equal (checked at export), True for
            rewrites meant to change it (TLC's local conversion).
        backends: Target backends the rewrite is for (e.g. a delegate's op coverage); empty for all.
    """

    name: str
    description: str
    apply: Callable[[nn.Module], nn.Module] = field(repr=False, compare=False)
    changes_output: bool = False
    backends: tuple[str, ...] = ()

    def applies_to(self, backend: str) -> bool:
        """Whether this rewrite is used when exporting for ``backend``."""
        return not self.backends or backend in self.backends


@dataclass(frozen=True)
class QuantHints:
    """Method hints for quantization engines.

    Args:
        keep_float: Modules left in float, named as in the method's model (``condition`` for
            ``model.condition``); a program that wraps the model keeps them too.
        calibration_size: Calibration crops.
        programs: Programs an integer export contains (None: all). A program that is only the
            composition of others (DiffIR's ``forward`` = ``prior`` then ``restore``) is left out,
            so one quantized copy of each part is calibrated, trained and shipped.
    """

    keep_float: tuple[str, ...] = ()
    calibration_size: int = 32
    programs: tuple[str, ...] | None = None


def in_kept_module(path: str, keep_float: tuple[str, ...]) -> bool:
    """Whether module ``path`` (dotted, relative to the program) is, or is inside, a module named in ``keep_float``.

    Names are the method model's own (``condition``); a program that wraps the model
    (``model.condition``) matches too: a name matches any run of whole path components.
    """
    wrapped = f".{path}."
    return any(f".{name}." in wrapped for name in keep_float)


@dataclass(frozen=True)
class TLCOptions:
    """Asks a method with global operations for its Test-time Local Converter form (TLC).

    TLC (Chu et al., ECCV 2022) makes global pooling, global statistics and transposed attention
    local at inference, over windows of ``base_size`` at image level (scaled to each layer's
    feature size as it was at ``train_size``). How a model is localised is its method's business:
    its recipe does it and records what it did in :attr:`ExportRecipe.tlc`.

    Args:
        train_size: (H, W) of the training crops; 256x256 by default, as the official code.
        base_size: (H, W) of the local window at image level; None = 1.5 x ``train_size``.
    """

    train_size: tuple[int, int] = (256, 256)
    base_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for label, size in (("train_size", self.train_size), ("base_size", self.base_size)):
            if size is None:
                continue
            size = tuple(int(s) for s in size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"TLC {label} must be two positive integers (H, W), got {size}")
            object.__setattr__(self, label, size)

    @property
    def resolved_base_size(self) -> tuple[int, int]:
        """``base_size``, or 1.5 x ``train_size`` truncated per axis (the official default)."""
        if self.base_size is not None:
            return self.base_size
        return int(self.train_size[0] * 1.5), int(self.train_size[1] * 1.5)

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        return {"train_size": list(self.train_size), "base_size": list(self.resolved_base_size)}


@dataclass(frozen=True)
class RecipeOptions:
    """What the user asked for, as far as the method's recipe cares.

    Args:
        variant: Model variant.
        task: Restoration task.
        input_size: (H, W) of the exported programs; None for the method's default.
        tlc: Export the Test-time Local Converter form (only for methods declaring global
            operations, whose recipe then sets :attr:`ExportRecipe.tlc`); None for the model as built.
        exits: Early exits to export for methods that have them: "all" or a comma list ("1,3,6");
            None for the method's default programs. Methods without exits reject it.
    """

    variant: str
    task: str
    input_size: tuple[int, int] | None = None
    tlc: TLCOptions | None = None
    exits: str | None = None


@dataclass(frozen=True)
class ExportRecipe:
    """Everything a target needs to export a method: programs, I/O, tiling, rewrites, hints.

    ``tlc`` is set by recipes whose programs run the Test-time Local Converter form: the
    :meth:`TLCOptions.to_json` fields plus what was localised (e.g. each layer's window), so the
    manifest says it and ``verify`` rebuilds the same reference.
    """

    programs: tuple[Program, ...]
    tile: TileSpec
    rewrites: tuple[Rewrite, ...] = ()
    quant: QuantHints = QuantHints()
    tlc: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        names = [p.name for p in self.programs]
        if not names:
            raise ValueError("a recipe needs at least one program")
        if len(set(names)) != len(names):
            raise ValueError(f"program names repeat: {names}")

    def program(self, name: str) -> Program:
        """The program called ``name``."""
        for program in self.programs:
            if program.name == name:
                return program
        raise KeyError(f"no program '{name}'; programs: {', '.join(p.name for p in self.programs)}")

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        return {
            "programs": [p.to_json() for p in self.programs],
            "tile": self.tile.to_json(),
            "rewrites": [{"name": r.name, "description": r.description, "changes_output": r.changes_output,
                          "backends": list(r.backends)} for r in self.rewrites],
            "quant_hints": asdict(self.quant),
            **({"tlc": self.tlc} if self.tlc is not None else {}),
        }
