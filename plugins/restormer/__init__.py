"""Restormer, and Restormer-Local (its Test-time Local Converter form).

Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022;
Chu et al., "Improving Image Restoration by Revisiting Global Information Aggregation" (TLC),
ECCV 2022. A 4-level U-Net of transposed (channel) attention and gated-dconv FFN blocks.

Variants:
    paper: dim 48, blocks [4,6,6,8], 4 refinement, heads [1,2,4,8], FFN 2.66: 26.127M parameters
        (WithBias LayerNorm; denoising tasks use BiasFree LayerNorm, 26.112M, as released).
    mobile: dim 24, blocks [2,3,3,4], 2 refinement: about a quarter of the paper's compute.
    tiny: dim 8, one block per level; for tests.

``restormer-local`` builds the same network with TLC's local attention (windows of 1.5x the
training crop, 256 by default, per layer); its state dict equals ``restormer``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeir.method import IOContract, Variant
from edgeir.plugins._layers.spec import builtin_spec, image_program, program_size, tile
from edgeir.plugins.tlc.spec import local_spec

if TYPE_CHECKING:
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions

TASKS = ("deblur", "derain", "defocus", "denoise15", "denoise25", "denoise50", "denoise-real")
SIZE_MULTIPLE = 8
DEFAULT_SIZE = {"paper": 256, "mobile": 256, "tiny": 64}
#: (dim, blocks, refinement blocks, heads) per variant.
CONFIGS = {
    "paper": (48, (4, 6, 6, 8), 4, (1, 2, 4, 8)),
    "mobile": (24, (2, 3, 3, 4), 2, (1, 2, 4, 8)),
    "tiny": (8, (1, 1, 1, 1), 1, (1, 1, 2, 2)),
}
GLOBAL_OPS = ("transposed channel attention (MDTA): C x C attention from statistics over all H x W",)
VARIANTS = (
    Variant("paper", "dim 48, blocks [4,6,6,8], 4 refinement, heads [1,2,4,8], FFN 2.66; WithBias LayerNorm "
                     "(26.127M), BiasFree for denoising tasks (26.112M), as released", declared_params=26_126_644),
    Variant("mobile", "dim 24, blocks [2,3,3,4], 2 refinement; for phones at 256x256"),
    Variant("tiny", "dim 8, one block per level, 1 refinement; for tests"),
)
PAPER = ("Zamir et al., Restormer: Efficient Transformer for High-Resolution Image Restoration, CVPR 2022 "
         "(arXiv 2111.09881)")


def build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.restormer.model import Restormer, config_for

    return Restormer(config_for(*CONFIGS[variant], task=task))


def recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.recipe import ExportRecipe

    height, width = program_size(options, DEFAULT_SIZE[options.variant], SIZE_MULTIPLE, "Restormer")
    record = None
    if options.tlc is not None:
        from edgeir.plugins.restormer.local import to_local

        # Every window coordinate is then a constant of the program's fixed shape.
        model, record = to_local(model, options.tlc)
    program = image_program(model, height, width, SIZE_MULTIPLE, dynamic=not record)
    return ExportRecipe(programs=(program,), tile=tile(height, width, SIZE_MULTIPLE), tlc=record)


def io(variant: str, task: str) -> IOContract:
    return IOContract(size_multiple=SIZE_MULTIPLE, global_ops=GLOBAL_OPS)


SPEC = builtin_spec(
    __name__,
    name="restormer",
    summary="Restormer: transposed-attention U-net transformer (26.1M params)",
    paper=PAPER,
    tasks=TASKS,
    variants=VARIANTS,
    default_task="deblur",
)

LOCAL_SPEC = local_spec(SPEC, "edgeir.plugins.restormer.local:to_local",
                        "Restormer-Local: Restormer with TLC local attention windows (same weights as restormer)")
