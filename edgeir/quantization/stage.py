"""The quantize stage: calibration data, PTQ or QAT through a target's engine, and the fake-quant check.

Engines live in ``edgeir.quant``; a target says which engine serves a scheme
(:meth:`edgeir.target.Target.quant_engine`). This module only orchestrates: it names the
calibration data (never random tensors), runs edgeir's training loop for QAT, keeps each program's
fake-quant model, saves it into the bundle for ``verify``, and checks the artifact against it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.errors import StageError, UsageError
from edgeir.quantization.scheme import Calibration, QuantEngine, QuantizedProgram, QuantScheme

log = logging.getLogger(__name__)

FAKEQUANT_DIR = "fakequant"
#: Learning rate of quantization-aware fine-tuning: small, the float weights are already trained.
QAT_LR = 2e-5
QAT_BATCH = 4


@dataclass
class QuantizeResult:
    """What the quantize stage produced: the recipe to export and, per program, the engine's result."""

    recipe: Any
    programs: dict[str, QuantizedProgram]
    calibration: Calibration
    samples: dict[str, Any] = field(default_factory=dict)


def frozen(module):
    """``module`` behind a wrapper whose ``eval()``/``train()`` are no-ops.

    Graphs from ``torch.export`` refuse ``eval()``; the reference runner calls it on whatever it runs.
    """
    import torch

    class FrozenProgram(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def train(self, mode: bool = True):
            return self

        def forward(self, *args):
            return self.inner(*args)

    return FrozenProgram(module)


def engine_for(target, options, scheme: QuantScheme) -> QuantEngine | None:
    """The engine the target uses for ``scheme`` (None for float schemes the target exports natively).

    Raises:
        UsageError: if the engine's SDK is missing.
    """
    engine = target.quant_engine(options)
    if engine is None:
        return None
    ok, reason = engine.availability()
    if not ok:
        raise UsageError(f"{scheme.name} for {target.name} needs engine {engine.name}: {reason}")
    return engine


def check_qat_steps(scheme: QuantScheme, qat_steps: int, qat_lr: float | None = None) -> None:
    """Raises UsageError for negative steps or learning rate, or QAT asked of a scheme that has nothing to train."""
    if qat_lr is not None and not qat_lr > 0:
        raise UsageError(f"the QAT learning rate must be positive; got {qat_lr}")
    if qat_steps < 0:
        raise UsageError(f"--qat-steps must be 0 (post-training quantization) or positive; got {qat_steps}")
    if qat_steps and not scheme.trainable:
        raise UsageError(f"--qat-steps applies to trainable integer schemes (int8); '{scheme.name}' has no "
                         "quantization-aware training")


def program_feeder(program, recipe) -> Callable[[Any], tuple[Any, ...]]:
    """``feed(photos) -> inputs``: the inputs of ``program`` for a batch of degraded photos.

    The photo input takes the batch; the others are filled as :mod:`edgeir.runtime.feeds` fills them for an
    artifact: ``zeros``, or the float output of program ``<name>`` (``program:<name>``) on the same batch.

    Raises:
        UsageError: for a program that does not run on photos (an input edgeir cannot fill).
    """
    import torch

    from edgeir.runtime.feeds import ZEROS, photo_inputs, runs_on_photos, source_program

    manifest = program.to_json()
    if not runs_on_photos(manifest, [p.to_json() for p in recipe.programs]):
        raise UsageError(f"program '{program.name}' does not run on photos (one photo input, the other inputs zeros "
                         "or another program's output); an integer scheme cannot calibrate it")
    photo = photo_inputs(manifest)[0]
    sources = []
    for index, spec in enumerate(program.inputs):
        if index == photo:
            sources.append(None)
        elif spec.source == ZEROS:
            sources.append(("zeros", spec.shape[1:]))
        else:
            name = source_program(manifest["inputs"][index])
            sources.append(("program", (recipe.program(name).module.eval(), program_feeder(recipe.program(name),
                                                                                          recipe))))

    def feed(photos):
        inputs = []
        for source in sources:
            if source is None:
                inputs.append(photos)
            elif source[0] == "zeros":
                inputs.append(photos.new_zeros((photos.shape[0], *source[1])))
            else:
                module, inner = source[1]
                with torch.no_grad():
                    inputs.append(module(*inner(photos)).detach())
        return tuple(inputs)

    return feed


def quantized_programs(recipe):
    """``recipe`` with only the programs an integer export contains (:attr:`QuantHints.programs`)."""
    names = recipe.quant.programs
    if names is None:
        return recipe
    missing = [n for n in names if n not in {p.name for p in recipe.programs}]
    if missing:
        raise ValueError(f"QuantHints.programs names {missing}, which the recipe does not have")
    return dataclasses.replace(recipe, programs=tuple(p for p in recipe.programs if p.name in names))


def calibration_data(spec, task: str, height: int, width: int, *, count: int, source: str | Path | None = None,
                     seed: int = 0) -> tuple[Calibration, Any]:
    """``count`` degraded crops of the training split (never the evaluation split), and the pair source.

    Returns:
        The calibration set and the :class:`edgeir.data.datasets.TrainingPairs` it was drawn from (QAT reuses it).
    """
    from edgeir.data.datasets import TrainingPairs

    if height != width:
        raise UsageError(f"calibration and QAT use square crops; the program is {height}x{width}: pass --size {height}")
    io = spec.io(spec.default_variant, task)
    pairs = TrainingPairs(task, source=source, crop=height * io.scale, batch=QAT_BATCH,
                          seed=seed + 7919, in_channels=io.in_channels, scale=io.scale)
    batches = [pairs.batch(i) for i in range(max(1, -(-count // QAT_BATCH)))]
    where = str(source) if source else "built-in photos"
    calibration = Calibration(source=f"{where} (training split)", task=task, batches=batches,
                              description=f"{len(batches) * QAT_BATCH} random {height}x{width} crops degraded for "
                                          f"{task}, seed {seed + 7919}")
    return calibration, pairs


def fed_program(module, feed):
    """``module`` behind a one-input call, ``fed(photos) = module(*feed(photos))``: what the training
    loop and the objective see of a prepared program with inputs besides the photo.

    The modules ``feed`` runs (float programs) stay outside: not trained, not in its state.
    """
    import torch

    from edgeir.evaluation.accuracy import set_training

    class FedProgram(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def train(self, mode: bool = True):
            set_training(self.inner, mode)
            self.training = mode
            return self

        def forward(self, photos):
            return self.inner(*feed(photos))

    return FedProgram()


def make_trainer(pairs, program_name: str, spec=None, feed=None, lr: float = QAT_LR):
    """The QAT loop for one program: edgeir's ``fine_tune`` with the method's objective.

    The objective is made for the quantization-prepared graph of the program: what it can compute
    there is what trains (FlexIR's self-distillation keeps its reconstruction term, as a one-exit
    graph exposes no staged features; a method without an objective gets Charbonnier). The report
    names the objective and whatever it logged about itself. ``feed`` fills the program's other
    inputs from the photo batch (:func:`program_feeder`).
    """
    from edgeir.training.loop import fine_tune, make_objective

    def train(module, steps: int) -> dict[str, Any]:
        if feed is not None:
            module = fed_program(module, feed)
        objective = make_objective(spec, module)
        report = fine_tune(module, objective, pairs, steps=steps, lr=lr,
                           progress_desc=f"QAT {program_name}", device="cpu")
        summary = report.to_json()
        kept = {k: summary[k] for k in ("steps", "device", "seconds", "final_loss") if k in summary} or summary
        return {**kept, "lr": lr, "objective": type(objective).__name__}

    return train


def quantize_recipe(engine: QuantEngine, scheme: QuantScheme, spec, recipe, task: str, *, qat_steps: int = 0,
                    calibration: str | Path | None = None, seed: int = 0, qat_lr: float | None = None
                    ) -> QuantizeResult:
    """Quantize every program of ``recipe`` with ``engine``; returns the recipe to export.

    ``qat_lr`` is the peak learning rate of quantization-aware training (default :data:`QAT_LR`).

    Raises:
        UsageError: for a program that does not run on photos (an input edgeir cannot fill, such as
            FlexIR's staged features: nothing to calibrate it with).
    """
    from edgeir.runtime.feeds import photo_inputs

    first = recipe.programs[0]
    program_feeder(first, recipe)  # refuses a program that does not run on photos
    _, _, height, width = first.inputs[photo_inputs(first.to_json())[0]].shape
    calib, pairs = calibration_data(spec, task, height, width, count=recipe.quant.calibration_size,
                                    source=calibration, seed=seed)
    results: dict[str, QuantizedProgram] = {}
    programs = []
    samples = {}
    for program in recipe.programs:
        feed = program_feeder(program, recipe)
        photo = program.inputs[photo_inputs(program.to_json())[0]]
        if tuple(photo.shape[-2:]) != (height, width):
            raise UsageError(f"program '{program.name}' takes {photo.shape[-2]}x{photo.shape[-1]} photos, not the "
                             f"calibration shape {height}x{width}; {scheme.name} cannot calibrate it")
        inputs = [feed(degraded) for degraded, _ in calib.batches]
        # QAT trains against the clean photo: a program that returns no image (DiffIR's prior) is calibrated only.
        steps = qat_steps if program.outputs[0].kind == "image" else 0
        trainer = make_trainer(pairs, program.name, spec, feed if len(program.inputs) > 1 else None,
                               qat_lr or QAT_LR) if steps else None
        result = engine.quantize(program, scheme.name, inputs, recipe.quant, qat_steps=steps, trainer=trainer)
        if qat_steps and not steps:
            result.details["qat"] = {"steps": 0, "note": "calibrated only: the program returns no image to train "
                                                         "against the clean photo"}
        results[program.name] = result
        programs.append(dataclasses.replace(program, module=result.export_module))
        samples[program.name] = tuple(x[:1] for x in inputs[0])
    return QuantizeResult(dataclasses.replace(recipe, programs=tuple(programs)), results, calib, samples)


# How much further from the float model than the fake-quant model an artifact may be and still count as the model
# that was quantized, when the two int8 simulations themselves differ beyond the tolerance (see fakequant_agrees).
FAITHFUL_MARGIN_DB = 0.5


def fakequant_agrees(artifact_vs_fakequant: float, artifact_vs_float: float, fakequant_vs_float: float,
                     tolerance: float | None) -> tuple[bool, str]:
    """Whether the artifact is the model that was quantized, and by which criterion.

    A lowering bug (NOTES.md: a PT2E graph whose artifact gave 11-17 dB against a 45 dB fake-quant model) makes
    the artifact disagree with its fake-quant model *and* move away from the float model. Two faithful int8
    simulations of a deep program (AnyIR ``paper``: 6,870 Core ML ops computing in float16 between quantized ops,
    against the float32 fake-quant graph) also drift apart, to ~34 dB, while staying exactly as close to the float
    model. So the artifact agrees when it is within ``tolerance`` of the fake-quant model, or when it is as close
    to the float model as the fake-quant model is (within :data:`FAITHFUL_MARGIN_DB`).
    """
    if tolerance is None or artifact_vs_fakequant >= tolerance:
        return True, "within tolerance of the fake-quant model"
    if artifact_vs_float >= fakequant_vs_float - FAITHFUL_MARGIN_DB:
        return True, (f"as close to the float model as the fake-quant model ({artifact_vs_float:.1f} vs "
                      f"{fakequant_vs_float:.1f} dB), though {artifact_vs_fakequant:.1f} dB from it")
    return False, (f"{artifact_vs_fakequant:.1f} dB < {tolerance:.0f} dB from its own fake-quant model, and further "
                   f"from the float model than it ({artifact_vs_float:.1f} vs {fakequant_vs_float:.1f} dB)")


def check_against_fakequant(name: str, got: list[np.ndarray], fakequant, inputs: list[np.ndarray],
                            scheme: QuantScheme, floating: list[np.ndarray]) -> dict[str, Any]:
    """PSNR of the artifact's outputs against the fake-quant model's (and of both against the float model's,
    ``floating``); an error where :func:`fakequant_agrees` says the artifact is not the quantized model.

    Raises:
        StageError: ('compare') when the artifact disagrees with its own fake-quant model.
    """
    import torch

    from edgeir.evaluation.metrics import psnr
    from edgeir.runtime.reference import ReferenceRunner

    simulated = ReferenceRunner(frozen(fakequant), torch.device("cpu")).run(inputs)
    value = min(psnr(g, e) for g, e in zip(got, simulated, strict=True))
    to_float = min(psnr(g, f) for g, f in zip(got, floating, strict=True))
    simulated_to_float = min(psnr(s, f) for s, f in zip(simulated, floating, strict=True))
    agrees, how = fakequant_agrees(value, to_float, simulated_to_float, scheme.fakequant_tolerance_db)
    if not agrees:
        raise StageError("compare", f"program '{name}': the artifact disagrees with its own fake-quant model: {how} "
                                    "(a lowering bug, not quantization noise)")
    return {"artifact_vs_fakequant_psnr_db": round(value, 2), "artifact_vs_float_psnr_db": round(to_float, 2),
            "fakequant_vs_float_psnr_db": round(simulated_to_float, 2), "fakequant_check": how}


def save_fakequant(engine: QuantEngine, result: QuantizeResult, recipe, root: Path) -> list[str]:
    """Save each program's fake-quant model under ``fakequant/`` in the engine's format."""
    (root / FAKEQUANT_DIR).mkdir(exist_ok=True)
    names = []
    for program in recipe.programs:
        quantized = result.programs[program.name]
        if quantized.fakequant is None:
            continue
        name = f"{FAKEQUANT_DIR}/{program.name}{engine.fakequant_suffix}"
        engine.save_fakequant(quantized.fakequant, program.example_inputs(), str(root / name))
        names.append(name)
    return names


def quantization_manifest(engine: QuantEngine, scheme: QuantScheme, result: QuantizeResult | None, root: Path,
                          qat_steps: int) -> dict[str, Any]:
    """The manifest's ``quantization`` entry: scheme, engine, calibration set, QAT steps, fake-quant files."""
    from edgeir.bundle import hash_files

    data: dict[str, Any] = {"scheme": scheme.name, "engine": engine.name,
                            "mode": "qat" if qat_steps else ("ptq" if result is not None else "weight-compression"),
                            "qat_steps": qat_steps, "fakequant_tolerance_db": scheme.fakequant_tolerance_db}
    if result is not None:
        data["calibration"] = result.calibration.to_json()
        data["programs"] = {name: r.details for name, r in result.programs.items()}
        files = save_fakequant(engine, result, result.recipe, root)
        data["fakequant_files"] = hash_files(root, files)
    return data


def load_fakequant(bundle, program: str):
    """The fake-quant model of ``program`` saved in ``bundle``, or None when it has none.

    Raises:
        UsageError: if the fake-quant file was modified after export.
    """
    from edgeir.bundle import file_sha256
    from edgeir.discovery import targets

    info = bundle.manifest.get("quantization") or {}
    found = [(n, d) for n, d in (info.get("fakequant_files") or {}).items()
             if n.rsplit(".", 1)[0] == f"{FAKEQUANT_DIR}/{program}"]
    if not found:
        return None
    name, digest = found[0]
    path = bundle.path / name
    if not path.is_file() or file_sha256(path) != digest:
        raise UsageError(f"bundle {bundle.path} was modified after export: sha256 differs for {name}")
    engine = targets().get(bundle.target).quant_engine(_options(bundle))
    if engine is None:
        raise UsageError(f"target {bundle.target} has no engine for {bundle.manifest['quant']} on this install")
    return frozen(engine.load_fakequant(str(path)))


def _options(bundle):
    from edgeir.target import ExportOptions

    return ExportOptions(backend=bundle.manifest["backend"], quant=bundle.manifest["quant"])
