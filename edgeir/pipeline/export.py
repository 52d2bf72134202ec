"""The export pipeline: named stages from the method's eager model to a verified bundle.

Stages: resolve -> build -> recipe -> rewrite -> quantize -> export -> load -> run -> compare -> write.
Every failure names its stage and chains the cause; nothing falls back silently.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeir.bundle import MANIFEST, Bundle, atomic_directory, bundle_name, hash_files, write_json
from edgeir.discovery import methods, quant_schemes, targets
from edgeir.errors import EdgeirError, StageError, UsageError
from edgeir.evaluation.metrics import max_abs_error
from edgeir.integrity import seal
from edgeir.pipeline.manifest import Manifest, toolchain
from edgeir.pipeline.recipe_check import check_recipe
from edgeir.pipeline.request import ExportRequest
from edgeir.progress import progress_bar
from edgeir.quantization.scheme import QuantScheme
from edgeir.recipe import ExportRecipe, Program, RecipeOptions, TLCOptions
from edgeir.runtime.feeds import output_psnr
from edgeir.runtime.reference import ReferenceRunner
from edgeir.target import Availability, ExportOptions, Runner, Target
from edgeir.weights.build import build_model_with_weights

log = logging.getLogger(__name__)

STAGES = ("build", "recipe", "rewrite", "quantize", "export", "load", "run", "compare", "write")
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
        if quant in quant_schemes().registry.names():
            elsewhere = sorted(t for t in targets().registry.names() if quant in targets().get(t).quant_schemes)
            raise UsageError(f"quantization scheme '{quant}' is not available for target {target.name}, which offers "
                             f"{', '.join(target.quant_schemes)}; '{quant}' works with: "
                             f"{', '.join(elsewhere) or 'no installed target'}")
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


def run_programs(runner: Runner, reference: ExportRecipe, quantized=None) -> dict[str, list[np.ndarray]]:
    """Run every program of the artifact once on its example input (a calibration sample for a quantized
    export, ``quantized``: a :class:`~edgeir.quantization.stage.QuantizeResult`).

    Raises:
        StageError: ('run') naming the program whose artifact does not run.
    """
    outputs = {}
    for program in reference.programs:
        try:
            outputs[program.name] = runner.run(program.name, _example(program, quantized))
        except Exception as exc:
            raise StageError("run", f"program '{program.name}': {type(exc).__name__}: {exc}") from exc
    return outputs


def compare_outputs(outputs: dict[str, list[np.ndarray]], reference: ExportRecipe, scheme: QuantScheme,
                    quantized=None) -> dict[str, Any]:
    """Compare what each program of the artifact returned with the eager model on the same input, and for a
    quantized export also with its own fake-quant model.

    Raises:
        StageError: ('compare') if the artifact disagrees beyond the scheme's tolerance, or with its
            fake-quant model beyond the scheme's fake-quant tolerance.
    """
    results = {}
    for program in reference.programs:
        example = _example(program, quantized)
        got = outputs[program.name]
        expected = ReferenceRunner(program.module, torch.device("cpu")).run(example)
        kinds = [spec.kind for spec in program.outputs] + ["image"] * max(0, len(got) - len(program.outputs))
        worst = min(output_psnr(g, e, {"kind": kind}) for g, e, kind in zip(got, expected, kinds, strict=False))
        error = max(max_abs_error(g, e) for g, e in zip(got, expected, strict=True))
        results[program.name] = {"psnr_db": round(worst, 2), "max_abs_err": error}
        if quantized is not None and program.name in quantized.programs:
            from edgeir.quantization.stage import check_against_fakequant

            results[program.name].update(check_against_fakequant(
                program.name, got, quantized.programs[program.name].fakequant, example, scheme, expected))
        if worst < scheme.verify_threshold_db:
            raise StageError("compare", f"program '{program.name}' of the artifact differs from the eager model: "
                                        f"{worst:.1f} dB < {scheme.verify_threshold_db:.0f} dB on its example input")
    return results


def _example(program: Program, quantized=None) -> list[np.ndarray]:
    if quantized is not None and program.name in quantized.samples:
        return [x.numpy() for x in quantized.samples[program.name]]
    return [x.numpy() for x in program.example_inputs()]


def export(method: str, target: str, **options: Any) -> Bundle:
    """Export ``method`` to ``target`` and return the bundle written under ``output``.

    Keyword arguments are the fields of :class:`~edgeir.pipeline.request.ExportRequest` (variant, task,
    weights, output, quant, backend, input_size, seed, tlc, qat_steps, calibration, exits, qat_lr, sign_key,
    record_weights_path); see there for what each means. Without ``weights`` the plugin's shipped weights
    for this variant and task are loaded, else a seeded random initialisation (and export says so).

    Raises:
        UsageError: for unknown names or bad options (``tlc`` for a method without global
            operations, or whose recipe does not implement the conversion).
        StageError: when a stage fails; it names the stage.
    """
    return run_export(ExportRequest(method, target, **options))


def run_export(request: ExportRequest) -> Bundle:
    """Run the export stages for ``request`` in order and return the sealed bundle (see :func:`export`)."""
    spec = methods().get(request.method)
    target_obj: Target = targets().get(request.target)
    variant = spec.variant(request.variant or spec.default_variant).name
    task = spec.check_task(request.task or spec.default_task)
    options, scheme = resolve_target_options(target_obj, request.backend, request.quant)
    tlc_options = resolve_tlc(spec, variant, task, request.tlc)
    from edgeir.quantization.stage import check_qat_steps, engine_for

    engine = engine_for(target_obj, options, scheme)
    check_qat_steps(scheme, request.qat_steps, request.qat_lr)
    target_label = request.target if options.backend == target_obj.default_backend \
        else f"{request.target}-{options.backend}"
    # "-tlc", not "-local": a registered '<method>-local' twin exports into '<method>-local-...' with its own windows.
    method_label = f"{request.method}-tlc" if tlc_options else request.method
    final = Path(request.output) / bundle_name(method_label, variant, task, target_label, options.quant)
    if request.sign_key is not None:
        from edgeir.integrity import load_private_key

        load_private_key(request.sign_key)  # a bad key is a usage error before the work, not after

    timings: dict[str, float] = {}
    with progress_bar(total=len(STAGES), desc=f"export {final.name}") as bar:
        with stage("build", bar, timings):
            model, weights_info = build_model_with_weights(request.method, variant, task, request.weights,
                                                           request.seed)
        with stage("recipe", bar, timings):
            recipe = spec.recipe(model, RecipeOptions(variant=variant, task=task, input_size=request.input_size,
                                                      tlc=tlc_options, exits=request.exits))
            if tlc_options and recipe.tlc is None:
                raise UsageError(f"method '{request.method}' declares global operations but its recipe does not "
                                 "implement the TLC conversion (it must localise its programs and set "
                                 "ExportRecipe.tlc)")
            if request.exits is not None and not any(p.name.startswith("exit_") for p in recipe.programs):
                raise UsageError(f"method '{request.method}' has no early exits (its programs: "
                                 f"{', '.join(p.name for p in recipe.programs)}); drop --exits")
            if engine is not None and not engine.post_export:
                from edgeir.quantization.stage import quantized_programs

                recipe = quantized_programs(recipe)
        with stage("rewrite", bar, timings):
            lowered, rewrite_records = apply_rewrites(recipe, options.backend)
            check_recipe(spec.name, lowered)  # the plugin's declared I/O and tiling vs what it exports
        quantized = None
        with stage("quantize", bar, timings):
            if engine is not None and not engine.post_export:
                from edgeir.quantization.stage import quantize_recipe

                quantized = quantize_recipe(engine, scheme, spec, lowered, task, qat_steps=request.qat_steps,
                                            calibration=request.calibration, seed=request.seed,
                                            qat_lr=request.qat_lr)
        with atomic_directory(final) as tmp:
            with stage("export", bar, timings):
                result = target_obj.export(quantized.recipe if quantized else lowered, options, tmp)
            quantization = None
            if engine is not None:
                from edgeir.quantization.stage import quantization_manifest

                quantization = _scrub_calibration_path(
                    quantization_manifest(engine, scheme, quantized, tmp, request.qat_steps), request.calibration)
            manifest = Manifest(
                method=spec.name, paper=spec.paper, variant=variant, task=task, target=target_obj.name,
                backend=options.backend, quant=options.quant, io=spec.io(variant, task).to_json(),
                params=sum(p.numel() for p in recipe.programs[0].module.parameters()), recipe=recipe.to_json(),
                rewrites_applied=rewrite_records,
                weights=_weights_record(weights_info.to_json(), request.record_weights_path),
                target_details=result.to_json(), files=hash_files(tmp, result.files),
                toolchain=toolchain(target_obj.toolchain_versions()), quantization=quantization,
                recipe_options={"exits": request.exits} if request.exits is not None else None,
                exits=[{"program": p.name, **p.metadata} for p in recipe.programs if p.name.startswith("exit_")]
                if request.exits is not None else None,
            )
            with stage("load", bar, timings):
                runner = target_obj.runtime(Bundle(tmp, manifest.to_json()))
            if isinstance(runner, Availability):
                export_check = {"status": "not-run", "reason": runner.reason}
                bar.update(2)
            else:
                with stage("run", bar, timings):
                    outputs = run_programs(runner, lowered, quantized)
                with stage("compare", bar, timings):
                    export_check = {"status": "passed", "runtime": runner.runtime,
                                    "programs": compare_outputs(outputs, lowered, scheme, quantized)}
            with stage("write", bar, timings):
                manifest = dataclasses.replace(manifest, export_check=export_check, stage_seconds=timings)
                _check_no_local_paths(manifest.to_json(), tmp)
                write_json(tmp / MANIFEST, seal(manifest.to_json(), request.sign_key))
    return Bundle.open(final)


def resolve_tlc(spec, variant: str, task: str, tlc: TLCOptions | bool | None) -> TLCOptions | None:
    """The TLC options asked for, after checking that the method has global operations to convert.

    Raises:
        UsageError: if TLC is asked of a method whose I/O contract declares no global operations.
    """
    if tlc is None or tlc is False:
        return None
    global_ops = spec.io(variant, task).global_ops
    if not global_ops:
        raise UsageError(f"--tlc converts global operations to local ones, and method '{spec.name}' declares "
                         "none (IOContract.global_ops is empty): its output does not depend on the whole image")
    return TLCOptions() if tlc is True else tlc


def _scrub_calibration_path(quantization: dict[str, Any], calibration: str | Path | None) -> dict[str, Any]:
    """The quantize stage's record with the calibration folder named by its name, not its absolute path."""
    if calibration is None:
        return quantization
    spelled = {str(Path(calibration).resolve()), str(calibration)}
    spelled = sorted((s for s in spelled if Path(s).is_absolute()), key=len, reverse=True)

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            for path in spelled:
                value = value.replace(path, Path(path).name)
        return value

    return scrub(quantization)


def _weights_record(weights: dict[str, Any], keep_path: bool) -> dict[str, Any]:
    """Weights provenance as file name + sha256: the absolute path only when asked for (this machine's
    :mod:`edgeir.weights.checkpoint_index` remembers it for ``verify``)."""
    weights = dict(weights)
    if weights.get("path"):
        weights["file"] = Path(weights["path"]).name
        if weights.get("source") == "checkpoint" and weights.get("file_sha256"):
            from edgeir.weights.checkpoint_index import remember

            remember(weights["file_sha256"], weights["path"])
        if not keep_path:
            del weights["path"]
    return weights


def _check_no_local_paths(manifest: dict[str, Any], tmp: Path) -> None:
    """Refuse to ship a manifest that names the folder the bundle was built in."""
    import json

    text = json.dumps(manifest)
    weights_path = manifest.get("weights", {}).get("path")
    for folder in {str(tmp.resolve()), str(tmp.parent.resolve())}:
        if len(folder) > 1 and folder in text.replace(weights_path or "\0", ""):
            raise StageError("write", f"the manifest records a local path ({folder}); a bundle must not carry "
                                      "the build machine's directory layout")
