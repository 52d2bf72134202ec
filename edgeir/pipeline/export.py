"""The export pipeline: named stages from the method's eager model to a verified bundle.

Stages: resolve -> build -> recipe -> rewrite -> quantize -> export -> load -> run -> compare -> write.
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
from edgeir.evaluation.metrics import max_abs_error
from edgeir.integrity import seal
from edgeir.pipeline.recipe_check import check_recipe
from edgeir.progress import progress_bar
from edgeir.quantization.scheme import QuantScheme
from edgeir.recipe import ExportRecipe, Program, RecipeOptions, TLCOptions
from edgeir.runtime.feeds import output_psnr
from edgeir.runtime.reference import ReferenceRunner
from edgeir.target import ExportOptions, Target, package_version
from edgeir.weights.build import build_model_with_weights

log = logging.getLogger(__name__)

STAGES = ("build", "recipe", "rewrite", "quantize", "export", "load", "run", "compare", "write")
REWRITE_TOLERANCE = 1e-4
MAX_SIDE = 4096  # largest side of an exported program (photos of any size are tiled through it)


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


def smoke_check(runner, reference: ExportRecipe, scheme: QuantScheme, quantized=None) -> dict[str, Any]:
    """Run every program of the artifact once on its example inputs and compare with the eager model.

    For a quantized export (``quantized``: a :class:`~edgeir.quantization.stage.QuantizeResult`) the input is a
    calibration sample, and the artifact is also compared with its own fake-quant model.

    Raises:
        StageError: ('compare') if the artifact disagrees beyond the scheme's tolerance, or with its
            fake-quant model beyond the scheme's fake-quant tolerance.
    """
    results = {}
    for program in reference.programs:
        example = [x.numpy() for x in program.example_inputs()]
        if quantized is not None and program.name in quantized.samples:
            example = [x.numpy() for x in quantized.samples[program.name]]
        try:
            got = runner.run(program.name, example)
        except Exception as exc:
            raise StageError("run", f"program '{program.name}': {type(exc).__name__}: {exc}") from exc
        expected = ReferenceRunner(program.module, torch.device("cpu")).run(example)
        kinds = [spec.kind for spec in program.outputs] + ["image"] * max(0, len(got) - len(program.outputs))
        worst = min(output_psnr(g, e, {"kind": kind}) for g, e, kind in zip(got, expected, kinds, strict=False))
        error = max(max_abs_error(g, e) for g, e in zip(got, expected, strict=True))
        results[program.name] = {"psnr_db": round(worst, 2), "max_abs_err": error}
        if quantized is not None and program.name in quantized.programs:
            from edgeir.quantization.stage import check_against_fakequant

            results[program.name].update(check_against_fakequant(
                program.name, got, quantized.programs[program.name].fakequant, example, scheme))
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
    tlc: TLCOptions | bool | None = None,
    qat_steps: int = 0,
    calibration: str | Path | None = None,
    exits: str | None = None,
    qat_lr: float | None = None,
    sign_key: str | Path | None = None,
    record_weights_path: bool = False,
) -> Bundle:
    """Export ``method`` to ``target`` and return the bundle written under ``output``.

    Args:
        method: Registered method name.
        target: Registered target name.
        variant: Model variant (method default when None).
        task: Restoration task (method default when None).
        weights: Checkpoint to load; None loads the weights the plugin ships for this variant and task
            (``MethodSpec.weights``) and, where it ships none, a seeded random initialisation (and says so);
            ``"random"`` asks for the random initialisation explicitly.
        output: Directory the bundle directory is created in.
        quant: Quantization / precision scheme (target default when None).
        backend: Target backend (target default when None).
        input_size: (H, W) of the exported programs (method default when None).
        seed: Seed of the random initialisation when no weights are given.
        tlc: Export the Test-time Local Converter form (True for the default windows, or the
            options); only for methods whose I/O contract declares global operations. The bundle
            is named ``<method>-local-...`` and its manifest records the windows under ``recipe.tlc``.
        qat_steps: Quantization-aware fine-tuning steps for integer schemes (0 = post-training quantization).
        calibration: Folder of clean images for calibration and QAT (None: the built-in photos' training split).
        exits: Early exits to export ("all" or "1,3,6") for methods with exit programs (``exit_<k>``).
        qat_lr: Peak learning rate of quantization-aware training (default: the quantize stage's, 2e-5).
        sign_key: ed25519 private key (PEM) to sign the manifest with (:mod:`edgeir.integrity`).
        record_weights_path: Record the checkpoint's absolute path in the manifest (by default only its
            file name and sha256: a bundle that ships in an app must not carry the build machine's paths).

    Raises:
        UsageError: for unknown names or bad options (``tlc`` for a method without global
            operations, or whose recipe does not implement the conversion).
        StageError: when a stage fails; it names the stage.
    """
    if input_size is not None and not all(0 < int(side) <= MAX_SIDE for side in input_size):
        raise UsageError(f"input size {input_size[0]}x{input_size[1]}: each side must be 1 to {MAX_SIDE} pixels")
    spec = methods().get(method)
    target_obj: Target = targets().get(target)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    options, scheme = resolve_target_options(target_obj, backend, quant)
    tlc_options = resolve_tlc(spec, variant, task, tlc)
    from edgeir.quantization.stage import check_qat_steps, engine_for

    engine = engine_for(target_obj, options, scheme)
    check_qat_steps(scheme, qat_steps, qat_lr)
    target_label = target if options.backend == target_obj.default_backend else f"{target}-{options.backend}"
    method_label = f"{method}-local" if tlc_options else method
    final = Path(output) / bundle_name(method_label, variant, task, target_label, options.quant)
    if sign_key is not None:
        from edgeir.integrity import load_private_key

        load_private_key(sign_key)  # a bad key is a usage error before the work, not after

    timings: dict[str, float] = {}
    with progress_bar(total=len(STAGES), desc=f"export {final.name}") as bar:
        with stage("build", bar, timings):
            model, weights_info = build_model_with_weights(method, variant, task, weights, seed)
        with stage("recipe", bar, timings):
            recipe = spec.recipe(model, RecipeOptions(variant=variant, task=task, input_size=input_size,
                                                      tlc=tlc_options, exits=exits))
            if tlc_options and recipe.tlc is None:
                raise UsageError(f"method '{method}' declares global operations but its recipe does not implement "
                                 "the TLC conversion (it must localise its programs and set ExportRecipe.tlc)")
            if exits is not None and not any(p.name.startswith("exit_") for p in recipe.programs):
                raise UsageError(f"method '{method}' has no early exits (its programs: "
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

                quantized = quantize_recipe(engine, scheme, spec, lowered, task, qat_steps=qat_steps,
                                            calibration=calibration, seed=seed, qat_lr=qat_lr)
        with atomic_directory(final) as tmp:
            with stage("export", bar, timings):
                result = target_obj.export(quantized.recipe if quantized else lowered, options, tmp)
            manifest = _manifest(spec, variant, task, target_obj, options, recipe, weights_info,
                                 rewrite_records, result.details, hash_files(tmp, result.files))
            if engine is not None:
                from edgeir.quantization.stage import quantization_manifest

                manifest["quantization"] = quantization_manifest(engine, scheme, quantized, tmp, qat_steps)
            if exits is not None:
                manifest["recipe_options"] = {"exits": exits}
                manifest["exits"] = [{"program": p.name, **p.metadata} for p in recipe.programs
                                     if p.name.startswith("exit_")]
            _strip_local_paths(manifest, record_weights_path, calibration)
            write_json(tmp / MANIFEST, seal(manifest))
            bundle = Bundle(tmp, manifest)
            with stage("load", bar, timings):
                runner = target_obj.runtime(bundle)
            if runner is None:
                manifest["export_check"] = {"status": "not-run",
                                            "reason": target_obj.runtime_unavailable_reason(bundle)}
                bar.update(2)
            else:
                with stage("run", bar, timings):
                    check = smoke_check(runner, lowered, scheme, quantized)
                with stage("compare", bar, timings):
                    manifest["export_check"] = {"status": "passed", "runtime": runner.runtime, "programs": check}
            with stage("write", bar, timings):
                manifest["stage_seconds"] = timings
                _check_no_local_paths(manifest, tmp)
                write_json(tmp / MANIFEST, seal(manifest, sign_key))
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


def _strip_local_paths(manifest: dict[str, Any], keep_weights_path: bool, calibration=None) -> None:
    """Weights provenance as file name + sha256: the absolute path only when asked for (this machine's
    :mod:`edgeir.weights.checkpoint_index` remembers it for ``verify``); the calibration folder by its name."""
    if calibration is not None and "quantization" in manifest:
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

        manifest["quantization"] = scrub(manifest["quantization"])
    weights = manifest.get("weights", {})
    if weights.get("path"):
        weights["file"] = Path(weights["path"]).name
        if weights.get("source") == "checkpoint" and weights.get("file_sha256"):
            from edgeir.weights.checkpoint_index import remember

            remember(weights["file_sha256"], weights["path"])
        if not keep_weights_path:
            del weights["path"]


def _check_no_local_paths(manifest: dict[str, Any], tmp: Path) -> None:
    """Refuse to ship a manifest that names the folder the bundle was built in."""
    import json

    text = json.dumps(manifest)
    weights_path = manifest.get("weights", {}).get("path")
    for folder in {str(tmp.resolve()), str(tmp.parent.resolve())}:
        if len(folder) > 1 and folder in text.replace(weights_path or "\0", ""):
            raise StageError("write", f"the manifest records a local path ({folder}); a bundle must not carry "
                                      "the build machine's directory layout")
