"""Verification: the artifact against the eager float32 reference, on real photos."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.bundle import VERIFY, Bundle, write_json
from edgeir.discovery import methods, quant_schemes, targets
from edgeir.errors import CheckFailed, UsageError
from edgeir.metrics import max_abs_error, psnr
from edgeir.photos import builtin_photos, degrade, fit_to
from edgeir.recipe import RecipeOptions
from edgeir.reference import ReferenceRunner, build_model_with_weights

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

    Raises:
        UsageError: if the bundle is not readable or its reference cannot be rebuilt.
        CheckFailed: if ``strict`` and the artifact differs from the reference beyond tolerance.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    manifest = bundle.manifest
    target = targets().get(bundle.target)
    corrupted = bundle.check_integrity()
    if corrupted:
        raise UsageError(f"bundle {bundle.path} was modified after export: sha256 differs for {', '.join(corrupted)}")
    data: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": manifest["method"], "variant": manifest["variant"], "task": manifest["task"],
        "target": manifest["target"], "quant": manifest["quant"],
        "weights": manifest["weights"],
        "structure": target.inspect(bundle),
    }
    runner = target.runtime(bundle)
    if runner is None:
        data.update(status="not-run", reason=target.runtime_unavailable_reason())
        write_json(bundle.path / VERIFY, data)
        return VerifyReport(bundle.path, "not-run", data)

    reference_model = _rebuild_reference(manifest, weights)
    spec = methods().get(manifest["method"])
    recipe = spec.recipe(reference_model, _recipe_options(manifest))
    threshold = quant_schemes().get(manifest["quant"]).verify_threshold_db
    data.update(threshold_db=threshold, artifact_runtime=runner.runtime, programs={})
    for program_manifest in bundle.programs:
        program = recipe.program(program_manifest["name"])
        if not _single_image_program(program_manifest):
            data["programs"][program.name] = {"status": "not-run",
                                              "reason": "not a single-image program; checked by its method's tests"}
            continue
        reference = ReferenceRunner(program.module)
        data["reference_device"] = str(reference.device)
        evaluate = manifest["weights"].get("source") != "random-init"
        data["programs"][program.name] = _compare_on_photos(program_manifest, reference, runner, manifest["task"],
                                                            photos, seed, threshold, evaluate)
    failed = [name for name, result in data["programs"].items() if result.get("status") == "failed"]
    data["status"] = "failed" if failed else "passed"
    if manifest["weights"].get("source") == "random-init":
        data["accuracy_note"] = ("weights are a random initialisation: the artifact matches its reference, but "
                                 "neither restores images; restoration accuracy is meaningless")
    write_json(bundle.path / VERIFY, data)
    report = VerifyReport(bundle.path, data["status"], data)
    if failed and strict:
        worst = min(data["programs"][name]["min_psnr_db"] for name in failed)
        raise CheckFailed(f"artifact differs from the reference: {worst:.1f} dB < {threshold:.0f} dB "
                          f"(programs {', '.join(failed)}); see {bundle.path / VERIFY}")
    return report


def _recipe_options(manifest: dict[str, Any]) -> RecipeOptions:
    shape = manifest["recipe"]["programs"][0]["inputs"][0]["shape"]
    return RecipeOptions(variant=manifest["variant"], task=manifest["task"], input_size=(shape[-2], shape[-1]),
                         exits=manifest.get("recipe_options", {}).get("exits"))


def _rebuild_reference(manifest: dict[str, Any], weights: str | Path | None):
    from edgeir.default_weights import RANDOM, SOURCE

    recorded = manifest["weights"]
    if weights is None and recorded["source"] == "random-init":
        weights = RANDOM
    if weights is None and recorded["source"] == SOURCE and Path(recorded.get("path", "")).is_file():
        weights = recorded["path"]  # else: this install's shipped weights, checked by the hash below
    if weights is None and recorded["source"] == "checkpoint":
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


def _single_image_program(program: dict[str, Any]) -> bool:
    return (len(program["inputs"]) == 1 and len(program["outputs"]) == 1
            and program["inputs"][0]["kind"] == "image" and program["outputs"][0]["kind"] == "image")


def _compare_on_photos(program: dict[str, Any], reference: ReferenceRunner, runner, task: str, count: int,
                       seed: int, threshold: float, evaluate: bool) -> dict[str, Any]:
    """Artifact vs reference per photo; with real weights (``evaluate``) also both against the clean photo.

    Restoration figures of a random initialisation are meaningless, so they are not reported then.
    """
    _, channels, height, width = program["inputs"][0]["shape"]
    rows = []
    for index, (name, photo) in enumerate(builtin_photos(count)):
        clean = fit_to(photo, height, width)
        degraded, how = degrade(clean, task, seed + index)
        batch = np.ascontiguousarray(degraded.transpose(2, 0, 1)[None, :channels], dtype=np.float32)
        expected = reference.run([batch])[0]
        got = runner.run(program["name"], [batch])[0]
        row = {"photo": name, "degradation": how, "psnr_db": round(psnr(got, expected), 2),
               "max_abs_err": max_abs_error(got, expected)}
        if evaluate and expected.shape[1:] == (channels, height, width):
            # Restoration quality against the clean photo, of the artifact and of the reference.
            truth = clean.transpose(2, 0, 1)[None, :channels]
            row["eval_psnr_db"] = round(psnr(got, truth), 2)
            row["reference_eval_psnr_db"] = round(psnr(expected, truth), 2)
        rows.append(row)
    worst = min(row["psnr_db"] for row in rows)
    evaluated = [row for row in rows if "eval_psnr_db" in row]
    return {
        "status": "passed" if worst >= threshold else "failed",
        "input_shape": program["inputs"][0]["shape"],
        "min_psnr_db": worst,
        "mean_psnr_db": round(float(np.mean([row["psnr_db"] for row in rows])), 2),
        "max_abs_err": max(row["max_abs_err"] for row in rows),
        **({"eval_psnr_db": round(float(np.mean([r["eval_psnr_db"] for r in evaluated])), 2),
            "reference_eval_psnr_db": round(float(np.mean([r["reference_eval_psnr_db"] for r in evaluated])), 2),
            "psnr_drop_db": round(float(np.mean([r["reference_eval_psnr_db"] - r["eval_psnr_db"]
                                                  for r in evaluated])), 3)} if evaluated else {}),
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
