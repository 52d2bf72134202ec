"""DiffIR: efficient diffusion model for image restoration (a 4-step diffusion on a 256-d prior).

Xia et al., "DiffIR: Efficient Diffusion Model for Image Restoration", ICCV 2023 (arXiv 2303.09472).
CPEN_S2 turns the LQ image into a condition vector; a small denoising MLP runs T = 4 reverse
diffusion steps on the compact IR prior representation (IPR, 256 floats); DIRformer, a
Restormer-shaped U-net whose blocks are modulated by the IPR (DMTA + DGFN), restores the image.

Programs: ``forward`` (LQ, x_T -> HQ), ``prior`` (LQ, x_T -> IPR) and ``restore`` (LQ tile, IPR ->
HQ tile). A large photo gets one IPR from the down-scaled whole photo and every tile is restored
with it (``TileSpec.global_state = "program:prior"``).

``--tlc`` (see :mod:`.tlc`): DMTA's transposed attention runs on overlapping windows; CPEN's pooling
stays global, because the IPR it produces is by design one vector for the whole photo.

Variants (per task; the ``paper`` counts equal the official unique parameter counts):
    paper: the official configs. deblur: dim 48, blocks [3,5,6,6], 4 refinement, FFN 2 (26.912M);
        denoise15/25/50 (not in the paper) take the deblur layout;
        sr4/sr2/sr1 (RealSR): dim 64, blocks [13,1,1,1], 13 refinement, FFN 2.2, BiasFree LN
        (24.971M / 24.982M / 25.023M); inpaint: dim 52, blocks [1,1,1,9], no refinement, FFN 1.8 (26.402M).
    mobile: dim 24 with fewer blocks and 2 CPEN residual blocks; for phones at 256x256.
    tiny: dim 8, one block per level, 1 CPEN residual block; for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeir.method import IOContract, Variant
from edgeir.plugins._layers.spec import Lazy, builtin_spec, program_size, tile

if TYPE_CHECKING:
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions

TASKS = ("deblur", "sr4", "sr2", "sr1", "inpaint", "denoise15", "denoise25", "denoise50")
DEFAULT_SIZE = {"paper": 256, "mobile": 256, "tiny": 64}
IPR_DIM = 256
#: Range documented for the starting vector x_T (standard normal; the artifacts take any value).
NOISE_RANGE = (-4.0, 4.0)
#: Range documented for the IPR (unbounded in principle; CPEN and the MLP end in LeakyReLU).
IPR_RANGE = (-4.0, 4.0)
GLOBAL_OPS = ("DMTA transposed channel attention (every DIRformer block)",
              "CPEN global average pooling (the IPR summarises the whole input)")


def _scale(task: str) -> int:
    return int(task[2:]) if task.startswith("sr") else 1


def io(variant: str, task: str) -> IOContract:
    return IOContract(
        in_channels=4 if task == "inpaint" else 3,
        out_channels=3,
        scale=_scale(task),
        size_multiple=32 if task == "sr1" else 16 if task == "sr2" else 8,
        global_ops=GLOBAL_OPS,
    )


def build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.diffir.model import DiffIR, config_for

    return DiffIR(config_for(variant, task))


def recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.plugins.diffir.model import PriorProgram, RestoreProgram
    from edgeir.recipe import DynamicSize, ExportRecipe, Program, QuantHints, TensorSpec

    contract = io(options.variant, options.task)
    multiple = contract.size_multiple
    height, width = program_size(options, max(DEFAULT_SIZE[options.variant], 2 * multiple), multiple,
                                 f"DiffIR {options.task}")
    image = TensorSpec("image", (1, contract.in_channels, height, width), pad_to=multiple,
                       color_order="RGB" if contract.in_channels == 3 else "RGB+mask")
    noise = TensorSpec("noise", (1, IPR_DIM), layout="NC", kind="vector", value_range=NOISE_RANGE, color_order="",
                       source="zeros")
    ipr_out = TensorSpec("ipr", (1, IPR_DIM), layout="NC", kind="vector", value_range=IPR_RANGE, color_order="")
    ipr_in = TensorSpec("ipr", (1, IPR_DIM), layout="NC", kind="vector", value_range=IPR_RANGE, color_order="",
                        source="program:prior")
    restored = TensorSpec("restored", (1, 3, height * contract.scale, width * contract.scale), scale=contract.scale)
    dynamic: DynamicSize | None = DynamicSize(min=multiple, max=4096, multiple=multiple)
    record = None
    if options.tlc is not None:  # --tlc: DMTA attention on overlapping windows (CPEN stays global), static shape
        from edgeir.plugins.diffir.tlc import to_local

        model, record = to_local(model, options.tlc, contract.in_channels)
        dynamic = None  # the window grid is a constant of the input shape
    programs = (
        Program("forward", model, (image, noise), (restored,), dynamic),
        Program("prior", PriorProgram(model), (image, noise), (ipr_out,), dynamic),
        Program("restore", RestoreProgram(model), (image, ipr_in), (restored,), dynamic),
    )
    return ExportRecipe(
        programs=programs,
        tile=tile(height, width, multiple, global_state="program:prior"),
        # int8: CPEN and the diffusion MLP stay float (a 256-float prior drives every block); forward is
        # prior then restore, so an int8 bundle ships those two and one quantized DIRformer.
        quant=QuantHints(keep_float=("condition", "denoise"), calibration_size=32, programs=("prior", "restore")),
        tlc=record,
    )


convert_checkpoint = Lazy("edgeir.plugins.diffir.checkpoint:official_state_dict")

SPEC = builtin_spec(
    __name__,
    name="diffir",
    summary="DiffIR: 4-step diffusion on a 256-d prior (CPEN + MLP) guiding an IPR-modulated Restormer U-net "
            "(DIRformer); exported whole and as prior + restore",
    paper="Xia et al., DiffIR: Efficient Diffusion Model for Image Restoration, ICCV 2023 (arXiv 2303.09472)",
    tasks=TASKS,
    variants=(
        Variant("paper", "official configs; deblur: dim 48, blocks [3,5,6,6], 4 refinement, FFN 2, CPEN 5 res "
                         "(26.912M unique params; sr4 24.971M, inpaint 26.402M)", declared_params=26_911_934),
        Variant("mobile", "dim 24, blocks [1,2,2,3] (deblur), 2 CPEN res blocks; for phones at 256x256"),
        Variant("tiny", "dim 8, one block per level, 1 CPEN res block; for tests"),
    ),
    default_task="deblur",
)
