"""FlexIR: flexible, manipulable image restoration with branch exits on a SwinIR backbone.

Chen et al., "FlexIR: Towards Flexible and Manipulable Image Restoration", ACM Multimedia 2024.
A SwinIR-M backbone whose every residual Swin transformer group (RSTB) is followed by a branch exit
(B-RSTB, Fig. 2): a pointer P picks how many groups run before exit P turns the feature into the
restored image (Regular Branch Inference); adaptive inference (Alg. 2) steps through the exits
and stops at the first whose output passes a gradient-sharpness threshold.

Variants:
    paper: SwinIR-M: 6 groups x 6 blocks, dim 180, 6 heads, window 8 (window 7 and img_range 255
        for JPEG); 2.17M (P=1) .. 11.50M (P=6) parameters on the active path (Table 3: 2.16 .. 11.46M).
    mobile: 4 groups x 4 blocks, dim 60, 6 heads, window 8; for phones at 256x256.
    tiny: 2 groups x 2 blocks, dim 16, 2 heads, window 4, 32x32; for tests.

Export: without ``--exits`` the one program ``forward`` is the full model (pointer N). With
``--exits all`` or ``--exits 1,3,6``: programs ``exit_k`` for the chosen exits, plus the staged set
``stem``, ``block_1..block_K`` and ``head_k`` that adaptive inference drives step by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgeir.errors import UsageError
from edgeir.method import IOContract, Variant
from edgeir.plugins._layers.spec import Lazy, builtin_spec

if TYPE_CHECKING:
    from torch import nn

TASKS = ("denoise15", "denoise25", "denoise50", "jpeg10", "jpeg20", "jpeg30", "jpeg40", "sr2", "sr3", "sr4")
WINDOW = {"paper": 8, "mobile": 8, "tiny": 4}
DEFAULT_SIZE = {"paper": 128, "mobile": 256, "tiny": 32}


def window_for(variant: str, task: str) -> int:
    """Window size (= size multiple) of ``variant`` for ``task``."""
    return 7 if variant == "paper" and task.startswith("jpeg") else WINDOW[variant]


def default_size(variant: str, task: str) -> int:
    """Default program H = W: the variant's size rounded down to a multiple of the window (126 for paper JPEG)."""
    window = window_for(variant, task)
    return DEFAULT_SIZE[variant] // window * window


def build(variant: str, task: str) -> nn.Module:
    from edgeir.plugins.flexir.model import FlexIR, config_for

    return FlexIR(config_for(variant, task))


def io(variant: str, task: str) -> IOContract:
    scale = int(task[2:]) if task.startswith("sr") else 1
    return IOContract(in_channels=3, out_channels=3, scale=scale, size_multiple=window_for(variant, task))


def _adaptive(runner: Any, manifest: Mapping[str, Any], threshold: float):
    from edgeir.plugins.flexir.adaptive import bundle_controller

    try:
        return bundle_controller(runner, manifest, threshold)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


recipe = Lazy("edgeir.plugins.flexir.programs:build_recipe")
convert_checkpoint = Lazy("edgeir.plugins.flexir.checkpoint:official_state_dict")

SPEC = builtin_spec(
    __name__,
    name="flexir",
    summary="FlexIR: SwinIR with a branch exit after every group; pointer or adaptive (sharpness) exits",
    paper="Chen et al., FlexIR: Towards Flexible and Manipulable Image Restoration, ACM MM 2024",
    tasks=TASKS,
    variants=(
        Variant("paper", "SwinIR-M backbone: 6 groups x 6 blocks, dim 180, 6 heads, window 8 (JPEG: 7); "
                         "11.50M params at P=6 (Table 3: 11.46M); 12.99M with all six exit heads",
                declared_params=12_989_178),
        Variant("mobile", "4 groups x 4 blocks, dim 60, 6 heads, window 8; for phones at 256x256"),
        Variant("tiny", "2 groups x 2 blocks, dim 16, 2 heads, window 4, 32x32; for tests"),
    ),
    default_task="denoise25",
    objective=Lazy("edgeir.plugins.flexir.objective:ProgressiveSelfDistillation"),
    adaptive=_adaptive,
)
