"""Per-layer quantization sensitivity: which module groups cost the most PSNR when quantized.

For a program and an engine, the whole program is quantized (PTQ) once; then, for each module
group, everything *but* that group is quantized. The PSNR the fake-quant model regains against the
float program when a group stays in float is that group's cost. Only fake-quant models run here
(no lowering), so the report is quick and engine-faithful.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeir.errors import UsageError


@dataclass(frozen=True)
class LayerCost:
    """PSNR of the fake-quant program against float with ``group`` kept in float, and the gain over all-int8."""

    group: str
    psnr_db: float
    gain_db: float


@dataclass(frozen=True)
class SensitivityReport:
    """All-int8 PSNR against the float program and the per-group costs, most costly first."""

    method: str
    target: str
    program: str
    engine: str
    all_quantized_psnr_db: float
    layers: tuple[LayerCost, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "layers": [dataclasses.asdict(layer) for layer in self.layers]}


def module_groups(module, depth: int = 1) -> list[str]:
    """Names of the submodules ``depth`` levels down that hold parameters (the candidate groups).

    Levels count from the method's model: a program that wraps it (one child holding every parameter,
    as FlexIR's ``exit_k`` and DiffIR's ``restore`` do) is looked through.
    """
    prefix = ""
    while True:
        holders = [(name, child) for name, child in module.named_children() if any(True for _ in child.parameters())]
        own = any(True for _ in module.parameters(recurse=False))
        if len(holders) != 1 or own:
            break
        name, module = holders[0]
        prefix += f"{name}."
    names = []
    for name, child in module.named_modules():
        if name and name.count(".") == depth - 1 and any(True for _ in child.parameters()):
            names.append(prefix + name)
    return names


def _psnr_vs_float(fakequant, module, batches) -> float:
    import torch

    from edgeir.evaluation.metrics import psnr
    from edgeir.quantization.stage import frozen

    fq = frozen(fakequant)
    values = []
    with torch.no_grad():
        for inputs in batches:
            for index in range(inputs[0].shape[0]):
                item = tuple(x[index:index + 1] for x in inputs)
                values.append(psnr(fq(*item).numpy(), module(*item).numpy()))
    return float(np.mean(values))


def named_groups(module, groups: Sequence[str]) -> list[str]:
    """``groups`` checked against ``module``: each entry is one module name, or several joined by ``+``
    (kept in float together), matched as ``QuantHints.keep_float`` matches them (``conv`` names every
    submodule called ``conv``; ``layers.0.conv`` one of them).

    Raises:
        UsageError: naming the entries that match no submodule, and the top-level groups.
    """
    from edgeir.recipe import in_kept_module

    names = [name for name, _ in module.named_modules() if name]
    unknown = [part for group in groups for part in group.split("+")
               if not any(in_kept_module(name, (part,)) for name in names)]
    if unknown:
        raise UsageError(f"no module named {', '.join(unknown)} in the program; its groups: "
                         f"{', '.join(module_groups(module))}")
    return list(groups)


def sensitivity(method: str, target: str, *, variant: str | None = None, task: str | None = None,
                weights=None, input_size: tuple[int, int] | None = None, depth: int = 1,
                groups: Sequence[str] | None = None, calibration=None, progress: bool = True) -> SensitivityReport:
    """Quantize all but one module group at a time and rank the groups by the PSNR they cost.

    The groups are the submodules ``depth`` levels down, or the ``groups`` named (see :func:`named_groups`).

    Raises:
        UsageError: for a target without an int8 engine, a program with no module groups, or a group
            that names no module.
    """
    from edgeir.discovery import methods, targets
    from edgeir.pipeline.export import apply_rewrites, resolve_target_options
    from edgeir.progress import progress_bar
    from edgeir.quantization.stage import calibration_data, engine_for, program_feeder, quantized_programs
    from edgeir.recipe import RecipeOptions
    from edgeir.runtime.feeds import photo_inputs
    from edgeir.weights.build import build_model_with_weights

    spec = methods().get(method)
    target_obj = targets().get(target)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    options, scheme = resolve_target_options(target_obj, None, "int8")
    engine = engine_for(target_obj, options, scheme)
    if engine is None:
        raise UsageError(f"target {target} has no int8 engine")
    model, _ = build_model_with_weights(method, variant, task, weights)
    recipe = spec.recipe(model, RecipeOptions(variant=variant, task=task, input_size=input_size))
    lowered, _ = apply_rewrites(quantized_programs(recipe), options.backend)
    # The first program that restores an image (DiffIR's int8 programs: prior -> vector, restore -> image).
    program = next(p for p in lowered.programs if p.outputs[0].kind == "image")
    feed = program_feeder(program, lowered)
    _, _, height, width = program.inputs[photo_inputs(program.to_json())[0]].shape
    calib, _ = calibration_data(spec, task, height, width, count=lowered.quant.calibration_size, source=calibration)
    inputs = [feed(degraded) for degraded, _ in calib.batches]
    groups = named_groups(program.module, groups) if groups else module_groups(program.module, depth)
    if not groups:
        raise UsageError(f"program '{program.name}' has no module groups at depth {depth}")
    evaluation = inputs[:2]
    base = _psnr_vs_float(engine.quantize(program, "int8", inputs, lowered.quant).fakequant, program.module,
                          evaluation)
    costs = []
    with progress_bar(total=len(groups), desc=f"quant-report {method}") as bar:
        for group in groups:
            bar.set_postfix_str(group)
            hints = dataclasses.replace(lowered.quant, keep_float=(*lowered.quant.keep_float, *group.split("+")))
            result = engine.quantize(program, "int8", inputs, hints)
            value = _psnr_vs_float(result.fakequant, program.module, evaluation)
            costs.append(LayerCost(group, round(value, 2), round(value - base, 3)))
            bar.update(1)
    costs.sort(key=lambda c: -c.gain_db)
    return SensitivityReport(method, target, program.name, engine.name, round(base, 2), tuple(costs))
