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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgeir.method import IOContract, MethodSpec, Variant
from edgeir.weights.shipped import weights_table

if TYPE_CHECKING:
    import torch
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


def _build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.anyir.model import VARIANTS, AnyIR

    return AnyIR(VARIANTS[variant])


def _recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.plugins.anyir.rewrites import EXPORT_REWRITES

    from edgeir.recipe import DynamicSize, ExportRecipe, Program, QuantHints, Rewrite, TensorSpec, TileSpec

    height, width = options.input_size or (DEFAULT_SIZE[options.variant],) * 2
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        from edgeir.errors import UsageError

        raise UsageError(f"AnyIR needs H and W multiples of {SIZE_MULTIPLE}; got {height}x{width}")
    record = None
    rewrites = EXPORT_REWRITES
    if options.tlc is not None:  # --tlc: local attention windows and GatedDA statistics, at a static shape
        from edgeir.plugins.anyir.tlc import to_local

        model, record = to_local(model, options.tlc)
        # delegate_friendly rebuilds the blocks with global attention and statistics; not for the local form.
        rewrites = tuple(r for r in EXPORT_REWRITES if r[0] != "delegate_friendly")
    shape = (1, 3, height, width)
    program = Program(
        name="forward",
        module=model,
        inputs=(TensorSpec("image", shape, pad_to=SIZE_MULTIPLE),),
        outputs=(TensorSpec("restored", shape),),
        dynamic_hw=None if record else DynamicSize(min=SIZE_MULTIPLE, max=4096, multiple=SIZE_MULTIPLE),
    )
    return ExportRecipe(
        programs=(program,),
        tile=TileSpec(size=(height, width), overlap=min(32, height // 4), multiple=SIZE_MULTIPLE),
        rewrites=tuple(Rewrite(name, description, fn, backends=DELEGATE_REWRITES.get(name, ()))
                       for name, fn, description in rewrites),
        quant=QuantHints(calibration_size=32),
        tlc=record,
    )


def _io(variant: str, task: str) -> IOContract:
    return IO


def _convert_checkpoint(raw: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from edgeir.plugins.anyir.checkpoint import official_state_dict

    return official_state_dict(raw)


SPEC = MethodSpec(
    name="anyir",
    summary="AnyIR all-in-one restorer: skip-split attention + gated degradation adaption U-net (5.7M params)",
    paper="Ren et al., Any Image Restoration with Efficient Automatic Degradation Adaptation (AnyIR), "
          "arXiv 2504.14249",
    tasks=TASKS,
    variants=(
        Variant("paper", "released configuration: dim 28, blocks [3,5,5,7], 4 refinement, heads [1,2,4,8] "
                         "(5.74M params; the paper's Table 4 reports 6.29M)", declared_params=5_736_376),
        Variant("mobile", "dim 16, blocks [2,3,3,4], 2 refinement; for phones at 256x256"),
        Variant("tiny", "dim 8, one block per level, 1 refinement; for tests"),
    ),
    default_task="allinone3",
    build=_build,
    recipe=_recipe,
    io=_io,
    convert_checkpoint=_convert_checkpoint,
    weights=weights_table(__file__, ("tiny", "denoise25"), ("mobile", "denoise25")),
)
