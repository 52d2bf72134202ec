"""Hi-IR: hierarchical information flow for generalized efficient image restoration.

Li et al., "Hierarchical Information Flow for Generalized Efficient Image Restoration" (Hi-IR),
arXiv 2411.18588. Each layer attends within local patches (L1), across the permuted grid of patches
(L2, same layer, v3 layout of Sec. 5.1) and mixes with a bottleneck convolutional FFN (L3). Columnar
body for super-resolution, U-shape for the other tasks. No official code exists: see model.py for
every open choice.

Variants:
    paper: Hi-IR-B. Columnar (sr*): width 216, 6 stages x 6 layers, 15.00M for x2 (Tab. 8: 14.68M).
        U-shape: width 56, 6 layers per level, 21.72M (Tab. 6: 22.33M).
    large: Hi-IR-L. Columnar: width 264, 8 stages x 8 layers, 38.62M for x2 (Tab. 8: 39.07M).
    mobile: width 48, 3 stages x 2 layers (SR) / width 16 U-shape; for phones.
    tiny: width 16 / 8, one or two layers; for tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgeir.method import IOContract, MethodSpec, Variant
from edgeir.weights.shipped import weights_table

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions

SR_TASKS = ("sr2", "sr3", "sr4")
TASKS = SR_TASKS + ("denoise15", "denoise25", "denoise50", "jpeg10", "jpeg20", "jpeg30", "jpeg40", "deblur", "defocus")
DEFAULT_SIZE = {"paper": 64, "large": 64, "mobile": 64, "tiny": 32}


def _scale(task: str) -> int:
    return int(task[2:]) if task in SR_TASKS else 1


def _multiple(variant: str, task: str) -> int:
    from edgeir.plugins.hiir.model import COLUMNAR, USHAPE

    return (COLUMNAR if task in SR_TASKS else USHAPE)[variant].size_multiple


def _build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.hiir.model import build

    return build(variant, task)


def _io(variant: str, task: str) -> IOContract:
    return IOContract(in_channels=3, out_channels=3, scale=_scale(task), size_multiple=_multiple(variant, task))


def _freeze(model: nn.Module) -> nn.Module:
    import copy

    from edgeir.plugins.hiir.model import freeze_biases

    return freeze_biases(copy.deepcopy(model).eval())


def _recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.errors import UsageError
    from edgeir.recipe import DynamicSize, ExportRecipe, Program, QuantHints, Rewrite, TensorSpec, TileSpec

    multiple = _multiple(options.variant, options.task)
    scale = _scale(options.task)
    default = max(DEFAULT_SIZE[options.variant], multiple)
    height, width = options.input_size or (default, default)
    if height % multiple or width % multiple:
        raise UsageError(f"Hi-IR {options.variant} {options.task} needs H and W multiples of {multiple}; "
                         f"got {height}x{width}")
    program = Program(
        name="forward",
        module=model,
        inputs=(TensorSpec("image", (1, 3, height, width), pad_to=multiple),),
        outputs=(TensorSpec("restored", (1, 3, height * scale, width * scale), scale=scale),),
        dynamic_hw=DynamicSize(min=multiple, max=4096, multiple=multiple),
    )
    return ExportRecipe(
        programs=(program,),
        tile=TileSpec(size=(height, width), overlap=min(16, height // 4), multiple=multiple),
        rewrites=(Rewrite("freeze_relative_bias",
                          "relative-position biases gathered once into constant buffers (no run-time gather)",
                          _freeze),),
        quant=QuantHints(calibration_size=32),
    )


def _convert_checkpoint(raw: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    for key in ("params_ema", "params", "state_dict", "model"):
        if isinstance(raw.get(key), Mapping):
            raw = raw[key]
            break
    return {k.removeprefix("module."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}


SPEC = MethodSpec(
    name="hiir",
    summary="Hi-IR: L1 window + L2 cross-window attention + L3 conv FFN; columnar SR, U-shape restoration",
    paper="Li et al., Hierarchical Information Flow for Generalized Efficient Image Restoration (Hi-IR), "
          "arXiv 2411.18588",
    tasks=TASKS,
    variants=(
        Variant("paper", "Hi-IR-B: columnar width 216, 6x6 layers for SR (15.00M at x2; paper 14.68M); "
                         "U-shape width 56 (21.72M; paper 22.33M)", declared_params=15_001_451),
        Variant("large", "Hi-IR-L: columnar width 264, 8x8 layers (38.62M at x2; paper 39.07M)"),
        Variant("mobile", "width 48, 3x2 layers (SR) / width-16 U-shape; for phones"),
        Variant("tiny", "width 16 / 8, one or two layers; for tests"),
    ),
    default_task="sr2",
    build=_build,
    recipe=_recipe,
    io=_io,
    convert_checkpoint=_convert_checkpoint,
    weights=weights_table(__file__, ("tiny", "denoise25"), ("mobile", "denoise25")),
)
