"""AnyIR: all-in-one image restoration with efficient degradation adaptation.

Ren et al., "Any Image Restoration with Efficient Automatic Degradation Adaptation" (AnyIR),
arXiv 2504.14249. A 4-level U-shape of degradation adaptation blocks: each block
splits channels even/odd, runs transposed attention on one half and gated degradation adaption on
the other, and fuses them in space and frequency.

Variants:
    paper: the released code's configuration (dim 28, blocks [3,5,5,7], 4 refinement blocks,
        heads [1,2,4,8]): 5.74M parameters. The paper's Table 4 says 6.29M; the released
        checkpoints are built from this configuration, so edgeir follows the code.
    mobile: dim 16, fewer blocks; for phones at 256x256.
    tiny: dim 8, one block per level; for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeir.method import IOContract, Variant
from edgeir.plugins._layers.spec import Lazy, builtin_spec, image_program, program_size, tile

if TYPE_CHECKING:
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions

TASKS = ("allinone3", "allinone5", "denoise15", "denoise25", "denoise50", "derain", "dehaze", "deblur", "lowlight")
SIZE_MULTIPLE = 8  # three PixelUnshuffle(2) levels
DEFAULT_SIZE = {"paper": 256, "mobile": 256, "tiny": 64}
# Rewrites that trade more, smaller ops for full XNNPACK delegation; other backends have native
# LayerNorm and reductions and are better served by the plain graph.
DELEGATE_REWRITES = {"delegate_friendly": ("xnnpack",)}
IO = IOContract(
    in_channels=3,
    out_channels=3,
    scale=1,
    size_multiple=SIZE_MULTIPLE,
    global_ops=("transposed channel attention", "gated degradation adaption statistics (spatial mean/std)"),
)


def build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.anyir.model import VARIANTS, AnyIR

    return AnyIR(VARIANTS[variant])


def recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.plugins.anyir.rewrites import EXPORT_REWRITES
    from edgeir.recipe import ExportRecipe, QuantHints, Rewrite

    height, width = program_size(options, DEFAULT_SIZE[options.variant], SIZE_MULTIPLE, "AnyIR")
    record = None
    rewrites = EXPORT_REWRITES
    if options.tlc is not None:  # --tlc: local attention windows and GatedDA statistics, at a static shape
        from edgeir.plugins.anyir.tlc import to_local

        model, record = to_local(model, options.tlc)
        # delegate_friendly rebuilds the blocks with global attention and statistics; not for the local form.
        rewrites = tuple(r for r in EXPORT_REWRITES if r[0] != "delegate_friendly")
    return ExportRecipe(
        programs=(image_program(model, height, width, SIZE_MULTIPLE, dynamic=not record),),
        tile=tile(height, width, SIZE_MULTIPLE),
        rewrites=tuple(Rewrite(name, description, fn, backends=DELEGATE_REWRITES.get(name, ()))
                       for name, fn, description in rewrites),
        quant=QuantHints(calibration_size=32),
        tlc=record,
    )


def io(variant: str, task: str) -> IOContract:
    return IO


convert_checkpoint = Lazy("edgeir.plugins.anyir.checkpoint:official_state_dict")

PAPER = ("Ren et al., Any Image Restoration with Efficient Automatic Degradation Adaptation (AnyIR), "
         "arXiv 2504.14249")
VARIANTS = (
    Variant("paper", "released configuration: dim 28, blocks [3,5,5,7], 4 refinement, heads [1,2,4,8] "
                     "(5.74M params; the paper's Table 4 reports 6.29M)", declared_params=5_736_376),
    Variant("mobile", "dim 16, blocks [2,3,3,4], 2 refinement; for phones at 256x256"),
    Variant("tiny", "dim 8, one block per level, 1 refinement; for tests"),
)


SPEC = builtin_spec(
    __name__,
    name="anyir",
    summary="AnyIR all-in-one restorer: skip-split attention + gated degradation adaption U-net (5.7M params)",
    paper=PAPER,
    tasks=TASKS,
    variants=VARIANTS,
    default_task="allinone3",
)
