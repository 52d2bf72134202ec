"""The export pipeline: named stages from the method's eager model to a verified bundle.

Stages: resolve -> build -> recipe -> rewrite -> export -> load -> run -> compare -> write.
Every failure names its stage and chains the cause; nothing falls back silently.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import platform
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from edgeir import __version__
from edgeir.bundle import MANIFEST, SCHEMA_VERSION, Bundle, atomic_directory, bundle_name, hash_files, write_json
from edgeir.discovery import methods, quant_schemes, targets
from edgeir.errors import EdgeirError, StageError, UsageError
from edgeir.metrics import max_abs_error, psnr
from edgeir.progress import progress_bar
from edgeir.quantization import QuantScheme
from edgeir.recipe import ExportRecipe, Program, RecipeOptions
from edgeir.reference import ReferenceRunner, build_model_with_weights
from edgeir.target import ExportOptions, Target, package_version

log = logging.getLogger(__name__)

STAGES = ("build", "recipe", "rewrite", "export", "load", "run", "compare", "write")
REWRITE_TOLERANCE = 1e-4


@contextlib.contextmanager
def stage(name: str, bar, timings: dict[str, float]) -> Iterator[None]:
    """Run one stage: show it, time it, and turn any failure into a :class:`StageError` naming it."""
    bar.set_postfix_str(name)
    start = time.perf_counter()
    try:
        yield
    except EdgeirError:
        raise
    except Exception as exc:
        raise StageError(name, f"{type(exc).__name__}: {exc}") from exc
    timings[name] = round(time.perf_counter() - start, 2)
    bar.update(1)


def resolve_target_options(target: Target, backend: str | None, quant: str | None) -> tuple[ExportOptions, QuantScheme]:
    """Target defaults, then what the user asked for; checked against what the target offers.

    Raises:
        UsageError: for a backend or scheme the target does not offer, or an unavailable target.
    """
    from edgeir.registry import unknown_name_message

    availability = target.availability()
    if not availability.ok:
        raise UsageError(f"target '{target.name}' cannot export on this host: {availability.reason}")
    backend = backend or target.default_backend
    if backend not in target.backends:
        raise UsageError(unknown_name_message(f"backend of {target.name}", backend, list(target.backends)))
    quant = quant or target.default_quant
    scheme = quant_schemes().get(quant)
    if quant not in target.quant_schemes:
        raise UsageError(unknown_name_message(f"quantization scheme of {target.name}", quant,
                                              list(target.quant_schemes)))
    return ExportOptions(backend=backend, quant=quant), scheme


def apply_rewrites(recipe: ExportRecipe, backend: str) -> tuple[ExportRecipe, list[dict[str, Any]]]:
    """Apply the recipe's rewrites for ``backend`` to every program, checking that output-preserving
    ones preserve the output.

    Returns:
        The recipe with rewritten modules, and one record per (program, rewrite) with the largest
        output change it caused.
    """
    records = []
    programs = []
    for program in recipe.programs:
        module = program.module.eval()
        example = program.example_inputs()
        with torch.no_grad():
            before = _as_tuple(module(*example))
        for rewrite in (r for r in recipe.rewrites if r.applies_to(backend)):
            module = rewrite.apply(copy.deepcopy(module)).eval()
            with torch.no_grad():
                after = _as_tuple(module(*example))
            change = max(max_abs_error(a.numpy(), b.numpy()) for a, b in zip(before, after, strict=True))
            scale = max(1.0, max(float(a.abs().max()) for a in before))
            records.append({"program": program.name, "rewrite": rewrite.name, "max_abs_change": change})
            if not rewrite.changes_output and change > REWRITE_TOLERANCE * scale:
                raise StageError("rewrite", f"rewrite '{rewrite.name}' changed the output of program '{program.name}' "
                                            f"by {change:.3g} (tolerance {REWRITE_TOLERANCE * scale:.3g})")
            if rewrite.changes_output:
                before = after
        programs.append(dataclasses.replace(program, module=module))
    return dataclasses.replace(recipe, programs=tuple(programs)), records


def _as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


def smoke_check(runner, reference: ExportRecipe, scheme: QuantScheme) -> dict[str, Any]:
    """Run every program of the artifact once on its example inputs and compare with the eager model.

    Raises:
        StageError: ('compare') if the artifact disagrees beyond the scheme's tolerance.
    """
    results = {}
    for program in reference.programs:
        example = [x.numpy() for x in program.example_inputs()]
        try:
            got = runner.run(program.name, example)
        except Exception as exc:
            raise StageError("run", f"program '{program.name}': {type(exc).__name__}: {exc}") from exc
        expected = ReferenceRunner(program.module, torch.device("cpu")).run(example)
        worst = min(psnr(g, e) for g, e in zip(got, expected, strict=True))
        error = max(max_abs_error(g, e) for g, e in zip(got, expected, strict=True))
        results[program.name] = {"psnr_db": round(worst, 2), "max_abs_err": error}
        if worst < scheme.verify_threshold_db:
            raise StageError("compare", f"program '{program.name}' of the artifact differs from the eager model: "
                                        f"{worst:.1f} dB < {scheme.verify_threshold_db:.0f} dB on its example input")
    return results


def export(
    method: str,
    target: str,
    *,
    variant: str | None = None,
    task: str | None = None,
    weights: str | Path | None = None,
    output: str | Path = "artifacts",
    quant: str | None = None,
    backend: str | None = None,
    input_size: tuple[int, int] | None = None,
    seed: int = 0,
    exits: str | None = None,
) -> Bundle:
    """Export ``method`` to ``target`` and return the bundle written under ``output``.

    Args:
        method: Registered method name.
        target: Registered target name.
        variant: Model variant (method default when None).
        task: Restoration task (method default when None).
        weights: Checkpoint to load; None uses a seeded random initialisation (and says so).
        output: Directory the bundle directory is created in.
        quant: Quantization / precision scheme (target default when None).
        backend: Target backend (target default when None).
        input_size: (H, W) of the exported programs (method default when None).
        seed: Seed of the random initialisation when no weights are given.
        exits: Early exits to export ("all" or "1,3,6") for methods with exit programs (``exit_<k>``).

    Raises:
        UsageError: for unknown names or bad options.
        StageError: when a stage fails; it names the stage.
    """
    spec = methods().get(method)
    target_obj: Target = targets().get(target)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    options, scheme = resolve_target_options(target_obj, backend, quant)
    target_label = target if options.backend == target_obj.default_backend else f"{target}-{options.backend}"
    final = Path(output) / bundle_name(method, variant, task, target_label, options.quant)

    timings: dict[str, float] = {}
    with progress_bar(total=len(STAGES), desc=f"export {final.name}") as bar:
        with stage("build", bar, timings):
            model, weights_info = build_model_with_weights(method, variant, task, weights, seed)
        with stage("recipe", bar, timings):
            recipe = spec.recipe(model, RecipeOptions(variant=variant, task=task, input_size=input_size,
                                                      exits=exits))
            if exits is not None and not any(p.name.startswith("exit_") for p in recipe.programs):
                raise UsageError(f"method '{method}' has no early exits (its programs: "
                                 f"{', '.join(p.name for p in recipe.programs)}); drop --exits")
        with stage("rewrite", bar, timings):
            lowered, rewrite_records = apply_rewrites(recipe, options.backend)
        with atomic_directory(final) as tmp:
            with stage("export", bar, timings):
                result = target_obj.export(lowered, options, tmp)
            manifest = _manifest(spec, variant, task, target_obj, options, recipe, weights_info,
                                 rewrite_records, result.details, hash_files(tmp, result.files))
            if exits is not None:
                manifest["recipe_options"] = {"exits": exits}
                manifest["exits"] = [{"program": p.name, **p.metadata} for p in recipe.programs
                                     if p.name.startswith("exit_")]
            write_json(tmp / MANIFEST, manifest)
            bundle = Bundle(tmp, manifest)
            with stage("load", bar, timings):
                runner = target_obj.runtime(bundle)
            if runner is None:
                manifest["export_check"] = {"status": "not-run", "reason": target_obj.runtime_unavailable_reason()}
                bar.update(2)
            else:
                with stage("run", bar, timings):
                    check = smoke_check(runner, lowered, scheme)
                with stage("compare", bar, timings):
                    manifest["export_check"] = {"status": "passed", "runtime": runner.runtime, "programs": check}
            with stage("write", bar, timings):
                manifest["stage_seconds"] = timings
                write_json(tmp / MANIFEST, manifest)
    return Bundle.open(final)


def _manifest(spec, variant, task, target, options, recipe: ExportRecipe, weights_info, rewrite_records,
              details, files) -> dict[str, Any]:
    program: Program = recipe.programs[0]
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "edgeir_version": __version__,
        "toolchain": {"python": platform.python_version(), "torch": package_version("torch"),
                      **target.toolchain_versions()},
        "host": {"system": platform.system(), "machine": platform.machine()},
        "method": spec.name,
        "paper": spec.paper,
        "variant": variant,
        "task": task,
        "target": target.name,
        "backend": options.backend,
        "quant": options.quant,
        "io": spec.io(variant, task).to_json(),
        "params": sum(p.numel() for p in program.module.parameters()),
        "recipe": recipe.to_json(),
        "rewrites_applied": rewrite_records,
        "weights": weights_info.to_json(),
        "target_details": details,
        "files": files,
    }
