"""NAFNet, and NAFNet-Local (its Test-time Local Converter form).

Chen et al., "Simple Baselines for Image Restoration" (NAFNet), ECCV 2022; Chu et al., "Improving
Image Restoration by Revisiting Global Information Aggregation" (TLC), ECCV 2022. A U-Net of
nonlinear-activation-free blocks whose only global operation is the simplified channel attention's
average pool. The released GoPro/REDS deblurring models are evaluated as NAFNet-Local.

Variants (the released configurations depend on the task):
    paper: deblur = NAFNet-GoPro-width32 (enc [1,1,1,28], middle 1, dec [1,1,1,1]): 17.112M;
        denoise-real = NAFNet-SIDD-width32 (enc [2,2,4,8], middle 12, dec [2,2,2,2]): 29.160M.
        The synthetic Gaussian tasks (denoise15/25/50) take the SIDD denoising layout.
    width64: the same layouts at width 64 (GoPro 67.889M, SIDD 115.983M).
    mobile: width 16, enc [1,1,1,4], middle 1, dec [1,1,1,1] (1.49M); for phones.
    tiny: width 8, one block per level; for tests.

``nafnet-local`` builds the same network with TLC's local pooling (windows of 1.5x the feature
size at the 256x256 training crop); its state dict equals ``nafnet``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeir.method import IOContract, Variant
from edgeir.plugins._layers.spec import builtin_spec, image_program, program_size, tile
from edgeir.plugins.tlc.spec import local_spec

if TYPE_CHECKING:
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions

TASKS = ("deblur", "denoise-real", "denoise15", "denoise25", "denoise50")
PROGRAM_MULTIPLE = 16  # the model pads to this internally; exported programs take it exactly
DEFAULT_SIZE = {"paper": 256, "width64": 256, "mobile": 256, "tiny": 64}
_GOPRO = {"enc_blk_nums": (1, 1, 1, 28), "middle_blk_num": 1, "dec_blk_nums": (1, 1, 1, 1)}
_SIDD = {"enc_blk_nums": (2, 2, 4, 8), "middle_blk_num": 12, "dec_blk_nums": (2, 2, 2, 2)}
# Backends that run float32: the integral-image local mean is exact there (not on Core ML's float16).
FLOAT32_BACKENDS = ("xnnpack", "portable", "onnxruntime")
GLOBAL_OPS = ("simplified channel attention: global average pool over H x W",)
VARIANTS = (
    Variant("paper", "released width 32: deblur = GoPro enc [1,1,1,28] (17.112M), denoise-real = SIDD "
                     "enc [2,2,4,8], middle 12 (29.160M)", declared_params=17_111_907),
    Variant("width64", "released width 64: deblur = GoPro (67.889M), denoise-real = SIDD (115.983M)"),
    Variant("mobile", "width 16, enc [1,1,1,4], middle 1, dec [1,1,1,1] (1.49M); for phones at 256x256"),
    Variant("tiny", "width 8, one block per level; for tests"),
)
PAPER = "Chen et al., Simple Baselines for Image Restoration (NAFNet), ECCV 2022 (arXiv 2204.04676)"


def config(variant: str, task: str):
    """The :class:`~.model.NAFNetConfig` of a variant for a task."""
    from edgeir.plugins.nafnet.model import NAFNetConfig

    layout = _SIDD if task.startswith("denoise") else _GOPRO
    if variant == "paper":
        return NAFNetConfig(width=32, **layout)
    if variant == "width64":
        return NAFNetConfig(width=64, **layout)
    if variant == "mobile":
        return NAFNetConfig(width=16, enc_blk_nums=(1, 1, 1, 4), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))
    return NAFNetConfig(width=8, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))


def build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.nafnet.model import NAFNet

    return NAFNet(config(variant, task))


def recipe(model: nn.Module, options: RecipeOptions) -> ExportRecipe:
    from edgeir.recipe import ExportRecipe, Rewrite

    height, width = program_size(options, DEFAULT_SIZE[options.variant], PROGRAM_MULTIPLE, "NAFNet",
                                 " (the model pads to it)")
    record = None
    rewrites = ()
    if options.tlc is not None:
        from edgeir.plugins.nafnet.local import to_local
        from edgeir.plugins.tlc.ops import use_integral_means

        model, record = to_local(model, options.tlc)
        rewrites = (Rewrite("tlc_integral_mean", "TLC local means from an integral image (cumsum): O(HW) instead of "
                            "O(HW k) for stride-1 pools of up to 384 px", use_integral_means,
                            backends=FLOAT32_BACKENDS),)
    # Static shape: the internal pad amount depends on H and W, and TLC windows must be constants.
    program = image_program(model, height, width, PROGRAM_MULTIPLE, dynamic=False)
    return ExportRecipe(programs=(program,), tile=tile(height, width, PROGRAM_MULTIPLE), rewrites=rewrites,
                        tlc=record)


def io(variant: str, task: str) -> IOContract:
    return IOContract(global_ops=GLOBAL_OPS)


SPEC = builtin_spec(
    __name__,
    name="nafnet",
    summary="NAFNet: nonlinear-activation-free U-net (GoPro 17.1M / SIDD 29.2M params)",
    paper=PAPER,
    tasks=TASKS,
    variants=VARIANTS,
    default_task="deblur",
)

LOCAL_SPEC = local_spec(SPEC, "edgeir.plugins.nafnet.local:to_local",
                        "NAFNet-Local: NAFNet with TLC local pooling (same weights as nafnet)")
