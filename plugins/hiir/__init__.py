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

from typing import TYPE_CHECKING

from edgeir.method import IOContract, Variant
from edgeir.plugins._layers.spec import Lazy, builtin_spec, image_program, program_size, tile

if TYPE_CHECKING:
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


def io(variant: str, task: str) -> IOContract:
    return IOContract(in_channels=3, out_channels=3, scale=_scale(task), size_multiple=_multiple(variant, task))


def _freeze(model: nn.Module) -> nn.Module:
    import copy

    from edgeir.plugins.hiir.model import freeze_biases

    return freeze_biases(copy.deepcopy(model).eval())


def recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.recipe import ExportRecipe, QuantHints, Rewrite

    multiple = _multiple(options.variant, options.task)
    height, width = program_size(options, max(DEFAULT_SIZE[options.variant], multiple), multiple,
                                 f"Hi-IR {options.variant} {options.task}")
    return ExportRecipe(
        programs=(image_program(model, height, width, multiple, scale=_scale(options.task)),),
        tile=tile(height, width, multiple, overlap=16),
        rewrites=(Rewrite("freeze_relative_bias",
                          "relative-position biases gathered once into constant buffers (no run-time gather)",
                          _freeze),),
        quant=QuantHints(calibration_size=32),
    )


build = Lazy("edgeir.plugins.hiir.model:build")

PAPER = ("Li et al., Hierarchical Information Flow for Generalized Efficient Image Restoration (Hi-IR), "
         "arXiv 2411.18588")
VARIANTS = (
    Variant("paper", "Hi-IR-B: columnar width 216, 6x6 layers for SR (15.00M at x2; paper 14.68M); "
                     "U-shape width 56 (21.72M; paper 22.33M)", declared_params=15_001_451),
    Variant("large", "Hi-IR-L: columnar width 264, 8x8 layers (38.62M at x2; paper 39.07M)"),
    Variant("mobile", "width 48, 3x2 layers (SR) / width-16 U-shape; for phones"),
    Variant("tiny", "width 16 / 8, one or two layers; for tests"),
)


SPEC = builtin_spec(
    __name__,
    name="hiir",
    summary="Hi-IR: L1 window + L2 cross-window attention + L3 conv FFN; columnar SR, U-shape restoration",
    paper=PAPER,
    tasks=TASKS,
    variants=VARIANTS,
    default_task="sr2",
)
