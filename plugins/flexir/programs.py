"""FlexIR's export programs: one per chosen exit, plus the staged set adaptive inference drives.

``exit_k(image) -> restored`` is Regular Branch Inference with pointer k. The staged set is
``stem(image) -> shallow``, ``block_k(feature) -> feature`` (k = 1 takes the shallow feature) and
``head_k(feature, shallow, image) -> restored``; running stem, block_1..block_k and head_k equals
``exit_k``. Every program is exported at one static shape with attention constants folded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from edgeir.errors import UsageError

if TYPE_CHECKING:
    from edgeir.recipe import ExportRecipe, RecipeOptions

    from .model import FlexIR

#: Value range of example features for the staged programs' smoke check (features are not images).
FEATURE_RANGE = (-1.0, 1.0)


class ExitProgram(nn.Module):
    """``model(image, pointer=k)``."""

    def __init__(self, model: FlexIR, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.k)


class StemProgram(nn.Module):
    def __init__(self, model: FlexIR) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.stem(image)


class BlockProgram(nn.Module):
    def __init__(self, model: FlexIR, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.model.block(self.k, feature)


class HeadProgram(nn.Module):
    def __init__(self, model: FlexIR, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, feature: torch.Tensor, shallow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.k, feature, shallow, image)


def parse_exits(text: str | None, groups: int) -> tuple[int, ...] | None:
    """``None`` (no exits: one ``forward`` program), ``"all"``, or a comma list like ``"1,3,6"``.

    Raises:
        UsageError: for a malformed list or an exit outside 1..groups.
    """
    if text is None:
        return None
    if text.strip().lower() == "all":
        return tuple(range(1, groups + 1))
    try:
        exits = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--exits takes 'all' or a comma list of exit numbers such as 1,3,{groups}; got '{text}'") \
            from None
    bad = [k for k in exits if not 1 <= k <= groups]
    if not exits or bad:
        raise UsageError(f"--exits: this model has exits 1..{groups}; got '{text}'")
    return tuple(exits)


def build_recipe(model: FlexIR, options: RecipeOptions) -> ExportRecipe:
    """Programs, I/O, tiling and the attention-freezing rewrite for ``model`` at the options' size."""
    from edgeir.plugins.flexir import default_size
    from edgeir.plugins.flexir.model import freeze_attention
    from edgeir.recipe import ExportRecipe, Program, QuantHints, Rewrite, TensorSpec, TileSpec

    config = model.config
    window = config.window
    height, width = options.input_size or (default_size(options.variant, options.task),) * 2
    if height % window or width % window:
        raise UsageError(f"FlexIR needs H and W multiples of its window ({window}); got {height}x{width}")
    image = TensorSpec("image", (1, config.in_chans, height, width), pad_to=window)
    out_shape = (1, config.in_chans, height * config.upscale, width * config.upscale)
    restored = TensorSpec("restored", out_shape, scale=config.upscale)
    exits = parse_exits(getattr(options, "exits", None), config.groups)

    def cost(k: int) -> dict[str, object]:
        return {"exit": k, "params": model.num_params_at_pointer(k),
                "macs": model.macs_at_pointer(k, (height, width))}

    if exits is None:
        programs = [Program("forward", ExitProgram(model, config.groups), (image,), (restored,),
                            metadata=cost(config.groups))]
    else:
        feature = TensorSpec("feature", (1, config.dim, height, width), kind="feature", value_range=FEATURE_RANGE,
                             color_order="")
        shallow = TensorSpec("shallow", feature.shape, kind="feature", value_range=FEATURE_RANGE, color_order="")
        programs = [Program(f"exit_{k}", ExitProgram(model, k), (image,), (restored,), metadata=cost(k))
                    for k in exits]
        parts = model._part_macs((height, width))
        from edgeir.plugins.flexir.adaptive import calibrate_model

        # Adaptive inference's stopping rule, calibrated for these weights, task and program size.
        rule = calibrate_model(model, options.task, (height, width), exits)
        programs.append(Program("stem", StemProgram(model), (image,), (shallow,),
                                metadata={"stage": "stem", "macs": parts["stem"] + parts["patch_norm"],
                                          "stopping_rule": rule.to_json()}))
        # ONNX refuses a graph whose input and output share a name: the block's output is "next_feature".
        next_feature = TensorSpec("next_feature", feature.shape, kind="feature", value_range=FEATURE_RANGE,
                                  color_order="")
        programs += [Program(f"block_{k}", BlockProgram(model, k), (shallow if k == 1 else feature,), (next_feature,),
                             metadata={"stage": "block", "group": k, "macs": parts["group"]})
                     for k in range(1, max(exits) + 1)]
        programs += [Program(f"head_{k}", HeadProgram(model, k), (feature, shallow, image), (restored,),
                             metadata={"stage": "head", "exit": k, "macs": parts["head"]}) for k in exits]
    freeze = Rewrite("freeze_attention",
                     f"relative-position bias (+ shifted-window mask) folded into constants for {height}x{width}: "
                     "no run-time gather (NOTES.md: a gathered bias breaks int8 XNNPACK artifacts)",
                     lambda module: freeze_attention(module, height, width))
    return ExportRecipe(
        programs=tuple(programs),
        tile=TileSpec(size=(height, width), overlap=min(2 * window, height // 4), multiple=window),
        rewrites=(freeze,),
        # Every LayerNorm (mean and variance as linear layers) stays float: an int8 variance feeding rsqrt
        # is where int8 accuracy collapses in transformer restorers (NOTES.md). So does each group's
        # closing 3x3 convolution ("conv"), the only quantized layer reading the un-normalised residual
        # stream: with the 2026-12-06 weights (mobile, 128x128) the fake-quant program agreed with float to
        # 38.2 dB with them in int8 and 45.3 dB without (edgeir quant-report; docs/quantization.md).
        quant=QuantHints(keep_float=("norm", "norm1", "norm2", "patch_norm", "conv"), calibration_size=32),
    )
