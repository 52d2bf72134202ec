"""Verification: the artifact against the eager float32 reference, on real photos."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.bundle import VERIFY, Bundle, write_json
from edgeir.data.photos import builtin_photos, degrade, fit_to
from edgeir.discovery import methods, quant_schemes, targets
from edgeir.errors import CheckFailed, UsageError
from edgeir.evaluation.metrics import max_abs_error, psnr
from edgeir.integrity import EVIDENCE_FIELD
from edgeir.quantization.stage import FAITHFUL_MARGIN_DB, fakequant_agrees, load_fakequant
from edgeir.recipe import RecipeOptions, TLCOptions
from edgeir.runtime.feeds import fill_inputs, output_psnr, photo_inputs, runs_on_photos
from edgeir.runtime.reference import ReferenceRunner
from edgeir.target import Availability
from edgeir.weights.build import build_model_with_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` measured; ``status`` is "passed", "failed" or "not-run" (with ``reason``)."""

    bundle: Path
    status: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.data.get("reason", "")


def verify(
    bundle: str | Path | Bundle,
    *,
    photos: int = 4,
    weights: str | Path | None = None,
    seed: int = 0,
    strict: bool = True,
    trust_key: str | Path | None = None,
    runtime: str | None = None,
) -> VerifyReport:
    """Run the artifact and the eager reference on built-in photos and compare them.

    The reference is rebuilt from the manifest: the same method, variant and task, with the same
    weights (the checkpoint it was exported from, or the same seeded random initialisation);
    their state-dict hash must match the manifest's. Results go to ``verify.json`` in the bundle.

    Args:
        bundle: Bundle directory (or an opened bundle).
        photos: How many built-in photos to use.
        weights: Checkpoint to rebuild the reference from when the recorded path has moved.
        seed: Seed of the degradation noise.
        strict: Raise :class:`CheckFailed` when the artifact is below its scheme's threshold.
        trust_key: ed25519 public key (PEM) the bundle must be signed with.
        runtime: One of the runtimes the target offers (``Target.runtimes``) instead of its default here.

    Verify writes ``verify.json`` only, never the manifest (whose digest must stay valid); it records
    the artifact digest it measured, which ``gate`` compares with the bundle's.

    Raises:
        IntegrityError: if the bundle fails the integrity check (:mod:`edgeir.integrity`).
        UsageError: if the bundle is not readable or its reference cannot be rebuilt.
        CheckFailed: if ``strict`` and the artifact differs from the reference beyond tolerance.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    manifest = bundle.manifest
    digest = bundle.verified(trust_key)
    target = targets().get(bundle.target)
    data: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        EVIDENCE_FIELD: digest,
        "method": manifest["method"], "variant": manifest["variant"], "task": manifest["task"],
        "target": manifest["target"], "quant": manifest["quant"],
        "weights": manifest["weights"],
        "structure": target.inspect(bundle),
    }
    runner = target.runtime(bundle) if runtime is None else target.runtime_named(bundle, runtime)
    if isinstance(runner, Availability):
        data.update(status="not-run", reason=runner.reason)
        write_json(bundle.path / VERIFY, data)
        return VerifyReport(bundle.path, "not-run", data)

    reference_model = _rebuild_reference(manifest, weights)
    spec = methods().get(manifest["method"])
    recipe = spec.recipe(reference_model, _recipe_options(manifest))
    scheme = quant_schemes().get(manifest["quant"])
    threshold = scheme.verify_threshold_db
    data.update(threshold_db=threshold, artifact_runtime=runner.runtime, programs={})
    if runner.note:
        data["artifact_runtime_note"] = runner.note
    for program_manifest in bundle.programs:
        program = recipe.program(program_manifest["name"])
        if not runs_on_photos(program_manifest, bundle.programs):
            data["programs"][program.name] = {"status": "not-run",
                                              "reason": "not a single-image program; checked by its method's tests"}
            continue
        reference = ReferenceRunner(program.module)
        data["reference_device"] = str(reference.device)
        evaluate = manifest["weights"].get("source") != "random-init"
        fakequant = load_fakequant(bundle, program.name)
        feeder = _reference_feeder(recipe, bundle.programs, reference)
        own = floating = None
        if scheme.reference_weights_threshold_db is not None:
            # Weight compression: the artifact is checked against the module that was converted (the export's
            # rewrites may store tensors the eager model computes, e.g. a gathered attention bias) holding the
            # artifact's own decompressed weights; the float reference measures what the compression costs.
            converted = _lowered_module(recipe, program.name, manifest)
            own = target.reference_weights(bundle, program.name, _named_tensors(converted))
        if own is not None:
            threshold = data["threshold_db"] = scheme.reference_weights_threshold_db
            floating, reference = reference, ReferenceRunner(_with_weights(converted, own.tensors), reference.device)
        data["programs"][program.name] = _compare_on_photos(program_manifest, reference, runner, manifest["task"],
                                                            photos, seed, threshold, evaluate, feeder,
                                                            baseline=floating)
        if own is not None:
            data["programs"][program.name]["reference_weights"] = own.details
        if data["programs"][program.name]["status"] == "failed":
            lowered = _lowered_module(recipe, program.name, manifest)
            lowered = _with_weights(lowered, own.tensors) if own is not None else lowered
            divergence = _locate(target, bundle, program_manifest, lowered, feeder, manifest["task"], seed, threshold,
                                 data["programs"][program.name])
            if divergence is not None:
                data["programs"][program.name]["first_divergence"] = divergence
        if fakequant is not None:
            data["programs"][program.name]["fakequant"] = _three_way(
                program_manifest, reference, ReferenceRunner(fakequant), runner, manifest["task"], photos, seed,
                quant_schemes().get(manifest["quant"]).fakequant_tolerance_db,
                _reference_feeder(recipe, bundle.programs, reference))
    failed = [name for name, result in data["programs"].items() if result.get("status") == "failed"]
    disagree = [name for name, result in data["programs"].items()
                if result.get("fakequant", {}).get("status") == "failed"]
    data["status"] = "failed" if failed else "passed"
    if manifest["weights"].get("source") == "random-init":
        data["accuracy_note"] = ("weights are a random initialisation: the artifact matches its reference, but "
                                 "neither restores images; restoration accuracy is meaningless")
    _record_exit_results(bundle, data)
    write_json(bundle.path / VERIFY, data)
    report = VerifyReport(bundle.path, data["status"], data)
    if disagree:
        data["status"] = "failed"
        write_json(bundle.path / VERIFY, data)
    if disagree and strict:
        # Never only a warning: the artifact computes something other than the model that was quantized.
        worst = min(data["programs"][name]["fakequant"]["min_artifact_vs_fakequant_db"] for name in disagree)
        tolerance = data["programs"][disagree[0]]["fakequant"]["tolerance_db"]
        raise CheckFailed(f"artifact disagrees with its own fake-quant model: {worst:.1f} dB < {tolerance:.0f} dB "
                          f"(programs {', '.join(disagree)}): a lowering bug, not quantization noise; "
                          f"see {bundle.path / VERIFY}")
    if failed and strict:
        worst = min(data["programs"][name]["min_psnr_db"] for name in failed)
        where = [data["programs"][name]["first_divergence"] for name in failed
                 if data["programs"][name].get("first_divergence", {}).get("op")]
        raise CheckFailed(f"artifact differs from the reference: {worst:.1f} dB < {threshold:.0f} dB "
                          f"(programs {', '.join(failed)})"
                          + (f"; first departing op: {where[0]['summary']}" if where else "")
                          + f"; see {bundle.path / VERIFY}")
    return report


def _with_weights(module, tensors: dict[str, Any]):
    """A copy of ``module`` with the parameters and buffers named in ``tensors`` replaced (the artifact's own
    weights)."""
    import copy

    import torch

    copied = copy.deepcopy(module)
    state = _named_tensors(copied)
    missing = sorted(set(tensors) - set(state))
    if missing:
        raise UsageError(f"the artifact's weights name {len(missing)} tensor(s) the reference does not hold "
                         f"(first: {missing[0]})")
    with torch.no_grad():
        for key, value in tensors.items():
            state[key].copy_(value.to(state[key].device, state[key].dtype))
    return copied


def _named_tensors(module) -> dict[str, Any]:
    """The module's parameters and buffers by state-dict name, non-persistent buffers included (a package
    may store one as a weight: Hi-IR's precomputed attention bias)."""
    return {**dict(module.named_buffers()), **dict(module.named_parameters())}


def _lowered_module(recipe, name: str, manifest: dict[str, Any]):
    """The module of program ``name`` after the export's rewrites for the bundle's backend: what was converted."""
    from edgeir.pipeline.export import apply_rewrites

    lowered, _ = apply_rewrites(recipe, manifest["backend"])
    return lowered.program(name).module


def _locate(target, bundle: Bundle, program: dict[str, Any], module, feeds, task: str, seed: int, threshold: float,
            result: dict[str, Any]) -> dict[str, Any] | None:
    """Ask the target where the artifact departs from the eager model, on the photo where it did worst."""
    worst = min(range(len(result["photos"])), key=lambda i: result["photos"][i]["psnr_db"])
    _, channels, height, width = program["inputs"][photo_inputs(program)[0]]["shape"]
    name, photo = builtin_photos(worst + 1)[worst]
    degraded, _ = degrade(fit_to(photo, height, width), task, seed + worst)
    batch = np.ascontiguousarray(degraded.transpose(2, 0, 1)[None, :channels], dtype=np.float32)
    try:
        found = target.locate_divergence(bundle, program["name"], module, feeds(program, batch), threshold)
    except Exception as exc:  # the search is a diagnosis: its failure must not hide the verdict
        log.warning("could not locate where %s departs from the reference: %s", program["name"], exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    if found is not None:
        found["photo"] = name
    return found


def _recipe_options(manifest: dict[str, Any]) -> RecipeOptions:
    shape = manifest["recipe"]["programs"][0]["inputs"][0]["shape"]
    tlc = manifest["recipe"].get("tlc")  # the Test-time Local Converter windows the artifact was exported with
    tlc_options = TLCOptions(train_size=tlc["train_size"], base_size=tlc["base_size"]) if tlc else None
    return RecipeOptions(variant=manifest["variant"], task=manifest["task"], input_size=(shape[-2], shape[-1]),
                         tlc=tlc_options, exits=manifest.get("recipe_options", {}).get("exits"))


def _rebuild_reference(manifest: dict[str, Any], weights: str | Path | None):
    from edgeir.weights.shipped import RANDOM, SOURCE

    recorded = manifest["weights"]
    if weights is None and recorded["source"] == "random-init":
        weights = RANDOM
    if weights is None and recorded["source"] == SOURCE and Path(recorded.get("path", "")).is_file():
        weights = recorded["path"]  # else: this install's shipped weights, checked by the hash below
    if weights is None and recorded["source"] == "checkpoint" and not recorded.get("path"):
        from edgeir.weights.checkpoint_index import find

        weights = find(recorded.get("file_sha256"))  # exported on this machine: it remembers where the file is
    if weights is None and recorded["source"] == "checkpoint":
        if not recorded.get("path"):
            raise UsageError(f"this bundle records its checkpoint by name ({recorded.get('file', '?')}, sha256 "
                             f"{str(recorded.get('file_sha256'))[:12]}), not by path; pass --weights with that file")
        weights = recorded["path"]
        if not Path(weights).is_file():
            raise UsageError(f"the checkpoint this bundle was exported from ({weights}) is gone; "
                             "pass --weights with the same file")
    model, info = build_model_with_weights(manifest["method"], manifest["variant"], manifest["task"], weights,
                                           seed=recorded.get("seed") or 0)
    if info.state_sha256 != recorded["state_sha256"]:
        raise UsageError("the rebuilt reference weights differ from the ones the artifact was exported from "
                         "(state-dict sha256 mismatch); pass --weights with the original checkpoint")
    return model


def _reference_feeder(recipe, programs: list[dict[str, Any]], reference: ReferenceRunner):
    """``feeds(program, batch)``: a program's inputs for one photo batch, its other inputs filled by the
    eager reference (``zeros``, or another program's reference output on the same batch), so the artifact
    and the reference get identical inputs."""
    by_name = {p["name"]: p for p in programs}

    def feeds(program: dict[str, Any], batch: np.ndarray) -> list[np.ndarray]:
        def from_program(name: str) -> np.ndarray:
            helper = ReferenceRunner(recipe.program(name).module, reference.device)
            return helper.run(feeds(by_name[name], batch))[0]

        return fill_inputs(program, batch, from_program)

    return feeds


def _compare_on_photos(program: dict[str, Any], reference: ReferenceRunner, runner, task: str, count: int,
                       seed: int, threshold: float, evaluate: bool, feeds=None,
                       baseline: ReferenceRunner | None = None) -> dict[str, Any]:
    """Artifact vs reference per photo; with real weights (``evaluate``) also both against the clean photo.

    Restoration figures of a random initialisation are meaningless, so they are not reported then.
    ``feeds(program, batch)`` fills inputs other than the photo (see :mod:`edgeir.runtime.feeds`).
    ``baseline``: the float reference, where ``reference`` holds the artifact's own (decompressed) weights;
    then the compression's cost, both references and the artifact against it, goes under ``compression``,
    and the restoration figures' ``reference_eval_psnr_db`` / ``psnr_drop_db`` stay those of the float model.
    """
    photo_index = photo_inputs(program)[0]
    _, channels, height, width = program["inputs"][photo_index]["shape"]
    rows = []
    for index, (name, photo) in enumerate(builtin_photos(count)):
        clean = fit_to(photo, height, width)
        degraded, how = degrade(clean, task, seed + index)
        batch = np.ascontiguousarray(degraded.transpose(2, 0, 1)[None, :channels], dtype=np.float32)
        inputs = feeds(program, batch) if feeds is not None else [batch]
        expected = reference.run(inputs)[0]
        got = runner.run(program["name"], inputs)[0]
        floating = baseline.run(inputs)[0] if baseline is not None else expected
        row = {"photo": name, "degradation": how,
               "psnr_db": round(output_psnr(got, expected, program["outputs"][0]), 2),
               "max_abs_err": max_abs_error(got, expected)}
        if baseline is not None:
            row["reference_vs_float_db"] = round(output_psnr(expected, floating, program["outputs"][0]), 2)
            row["artifact_vs_float_db"] = round(output_psnr(got, floating, program["outputs"][0]), 2)
        if evaluate and expected.shape[1:] == (channels, height, width):
            # Restoration quality against the clean photo, of the artifact and of the (float) reference.
            truth = clean.transpose(2, 0, 1)[None, :channels]
            row["eval_psnr_db"] = round(psnr(got, truth), 2)
            row["reference_eval_psnr_db"] = round(psnr(floating, truth), 2)
            if baseline is not None:
                row["decompressed_reference_eval_psnr_db"] = round(psnr(expected, truth), 2)
        rows.append(row)
    worst = min(row["psnr_db"] for row in rows)
    evaluated = [row for row in rows if "eval_psnr_db" in row]
    return {
        "status": "passed" if worst >= threshold else "failed",
        "input_shape": program["inputs"][photo_index]["shape"],
        "min_psnr_db": worst,
        "mean_psnr_db": round(float(np.mean([row["psnr_db"] for row in rows])), 2),
        "max_abs_err": max(row["max_abs_err"] for row in rows),
        **({"eval_psnr_db": round(float(np.mean([r["eval_psnr_db"] for r in evaluated])), 2),
            "reference_eval_psnr_db": round(float(np.mean([r["reference_eval_psnr_db"] for r in evaluated])), 2),
            "psnr_drop_db": round(float(np.mean([r["reference_eval_psnr_db"] - r["eval_psnr_db"]
                                                  for r in evaluated])), 3)} if evaluated else {}),
        **({"compression": _compression_cost(rows)} if baseline is not None else {}),
        "photos": rows,
    }


def _compression_cost(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What weight compression costs, from the photos' rows: the reference with the artifact's decompressed
    weights and the artifact against the float reference (min over photos), and with real weights the mean
    restoration PSNR the decompressed weights lose. Informational: ``verify`` checks the artifact against
    the decompressed-weight reference."""
    evaluated = [row for row in rows if "decompressed_reference_eval_psnr_db" in row]
    return {
        "min_reference_vs_float_db": min(row["reference_vs_float_db"] for row in rows),
        "min_artifact_vs_float_db": min(row["artifact_vs_float_db"] for row in rows),
        **({"psnr_drop_db": round(float(np.mean([r["reference_eval_psnr_db"] - r["decompressed_reference_eval_psnr_db"]
                                                 for r in evaluated])), 3)} if evaluated else {}),
    }


def _record_exit_results(bundle: Bundle, data: dict[str, Any]) -> None:
    """Each early exit's verified figures, in ``verify.json``'s ``exits`` list (bundles with exits).

    They go to verify.json, not the manifest: the manifest is sealed at export. ``psnr_db`` is the
    exit's restoration PSNR against the clean photos (absent for random weights);
    ``artifact_vs_reference_db`` the worst agreement of its artifact with the eager exit.
    """
    exits = bundle.manifest.get("exits")
    if not exits:
        return
    data["exits"] = []
    for entry in exits:
        result = data["programs"].get(entry["program"], {})
        if "min_psnr_db" not in result:
            continue
        data["exits"].append({"program": entry["program"], "psnr_db": result.get("eval_psnr_db"),
                              "reference_psnr_db": result.get("reference_eval_psnr_db"),
                              "artifact_vs_reference_db": result["min_psnr_db"],
                              "photos": len(result.get("photos", []))})


def _three_way(program: dict[str, Any], reference: ReferenceRunner, fakequant: ReferenceRunner, runner, task: str,
               count: int, seed: int, tolerance: float | None, feeds) -> dict[str, Any]:
    """Float model, fake-quant model and artifact on the same photos: PSNR of each pair.

    The artifact is the model that was quantized when it is within ``tolerance`` of the fake-quant model or as
    close to the float model as that is (:func:`~edgeir.quantization.stage.fakequant_agrees`; NOTES.md: a PT2E
    lowering that gave 11-17 dB while the fake-quant model was fine fails both).
    All three get the same inputs; ``feeds(program, batch)`` fills those besides the photo.
    """
    _, channels, height, width = program["inputs"][photo_inputs(program)[0]]["shape"]
    kind = program["outputs"][0]
    rows = []
    for index, (name, photo) in enumerate(builtin_photos(count)):
        clean = fit_to(photo, height, width)
        degraded, _ = degrade(clean, task, seed + index)
        batch = np.ascontiguousarray(degraded.transpose(2, 0, 1)[None, :channels], dtype=np.float32)
        inputs = feeds(program, batch)
        floating = reference.run(inputs)[0]
        simulated = fakequant.run(inputs)[0]
        got = runner.run(program["name"], inputs)[0]
        rows.append({"photo": name, "artifact_vs_float_db": round(output_psnr(got, floating, kind), 2),
                     "fakequant_vs_float_db": round(output_psnr(simulated, floating, kind), 2),
                     "artifact_vs_fakequant_db": round(output_psnr(got, simulated, kind), 2)})
    verdicts = [fakequant_agrees(row["artifact_vs_fakequant_db"], row["artifact_vs_float_db"],
                                 row["fakequant_vs_float_db"], tolerance) for row in rows]
    for row, (_, how) in zip(rows, verdicts, strict=True):
        row["check"] = how
    return {
        "status": "passed" if all(ok for ok, _ in verdicts) else "failed",
        "tolerance_db": tolerance,
        "faithful_margin_db": FAITHFUL_MARGIN_DB,
        "min_artifact_vs_fakequant_db": min(row["artifact_vs_fakequant_db"] for row in rows),
        "min_fakequant_vs_float_db": min(row["fakequant_vs_float_db"] for row in rows),
        "min_artifact_vs_float_db": min(row["artifact_vs_float_db"] for row in rows),
        "photos": rows,
    }


def reference_program(manifest: dict[str, Any], program: str, weights: str | Path | None = None):
    """The eager float32 module of ``program``, rebuilt from a bundle manifest with the artifact's weights.

    Raises:
        UsageError: if the weights cannot be found or differ from the ones the artifact was exported from.
    """
    model = _rebuild_reference(manifest, weights)
    recipe = methods().get(manifest["method"]).recipe(model, _recipe_options(manifest))
    return recipe.program(program).module
