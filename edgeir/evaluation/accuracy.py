"""Restoration accuracy of a model on evaluation pairs: PSNR and SSIM against the clean crops.

Works on any ``nn.Module`` (eager, or a PT2E-prepared GraphModule) and on any callable from a
float32 NCHW array to one (an artifact's runtime). A model with several exits reports every exit:
it exposes ``forward_exits(x) -> Mapping[str, Tensor]`` (exit name -> restored image, cheapest
first); a plain model reports one entry, ``"output"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeir.evaluation.metrics import psnr

EXITS_METHOD = "forward_exits"
SINGLE_EXIT = "output"


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two HxWxC (or CxHxW with C <= 4 first) images in [0, 1] (scikit-image, Gaussian window)."""
    from skimage.metrics import structural_similarity

    a = np.clip(np.asarray(a, dtype=np.float64), 0, 1)
    b = np.clip(np.asarray(b, dtype=np.float64), 0, 1)
    if a.ndim == 3 and a.shape[0] <= 4 and a.shape[-1] > 4:
        a, b = a.transpose(1, 2, 0), b.transpose(1, 2, 0)
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=-1 if a.ndim == 3 else None,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


@dataclass(frozen=True)
class EvalResult:
    """Per-exit mean PSNR / SSIM over the pairs, the degraded input's PSNR, and per-image figures.

    Args:
        exits: exit name -> ``{"psnr_db": mean, "ssim": mean}``, in the model's exit order.
        input_psnr_db: Mean PSNR of the degraded input against the clean crop (None when shapes
            differ, e.g. super-resolution).
        images: One dict per pair: name and per-exit PSNR / SSIM.
    """

    exits: dict[str, dict[str, float]]
    input_psnr_db: float | None
    images: list[dict[str, Any]] = field(default_factory=list)

    @property
    def psnr_db(self) -> float:
        """PSNR of the last (full) exit."""
        return list(self.exits.values())[-1]["psnr_db"]

    def to_json(self) -> dict[str, Any]:
        return {"exits": self.exits, "input_psnr_db": self.input_psnr_db, "images": self.images}


def _outputs(model: Any, x) -> Mapping[str, Any]:
    exits = getattr(model, EXITS_METHOD, None)
    if callable(exits):
        return dict(exits(x))
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return {SINGLE_EXIT: out}


def _numpy(t) -> np.ndarray:
    return t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float32)


def evaluate(model: Any, pairs: Sequence, *, device=None, with_ssim: bool = True,
             set_mode: Callable[[Any, bool], None] | None = None) -> EvalResult:
    """PSNR (and SSIM) of ``model``'s outputs against the clean crops of ``pairs``.

    Args:
        model: An ``nn.Module`` (moved to ``device``, put in eval mode and restored after) or a
            callable taking and returning float32 NCHW numpy arrays.
        pairs: :class:`edgeir.data.datasets.EvalPair` items.
        device: Torch device for a module (default: where its parameters are).
        with_ssim: Also compute SSIM (slower).
        set_mode: ``(model, training)`` switch for modules whose ``train()`` is not supported
            (PT2E GraphModules); default ``model.train(training)``.
    """
    import torch

    is_module = isinstance(model, torch.nn.Module)
    was_training = bool(getattr(model, "training", False))
    if is_module:
        if device is None:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
        (set_mode or set_training)(model, False)
    totals: dict[str, list[tuple[float, float]]] = {}
    inputs: list[float] = []
    images = []
    try:
        with torch.no_grad():
            for pair in pairs:
                clean = _numpy(pair.clean)[0]
                if is_module:
                    outs = {k: _numpy(v) for k, v in _outputs(model, pair.degraded.to(device)).items()}
                else:
                    outs = {k: _numpy(v) for k, v in _outputs(model, _numpy(pair.degraded)).items()}
                degraded = _numpy(pair.degraded)[0][:3]
                if degraded.shape == clean.shape:
                    inputs.append(psnr(degraded, clean))
                record: dict[str, Any] = {"name": pair.name}
                for name, out in outs.items():
                    p = psnr(out[0], clean)
                    s = ssim(out[0], clean) if with_ssim else float("nan")
                    totals.setdefault(name, []).append((p, s))
                    record[name] = {"psnr_db": round(p, 3), **({"ssim": round(s, 4)} if with_ssim else {})}
                images.append(record)
    finally:
        if is_module and was_training:
            (set_mode or set_training)(model, True)
    exits = {name: {"psnr_db": float(np.mean([v[0] for v in values])),
                    **({"ssim": float(np.mean([v[1] for v in values]))} if with_ssim else {})}
             for name, values in totals.items()}
    return EvalResult(exits, float(np.mean(inputs)) if inputs else None, images)


def set_training(model, training: bool) -> None:
    """``model.train(training)``; for a PT2E GraphModule (whose ``train()`` raises), torchao's move helpers."""
    try:
        model.train(training)
    except NotImplementedError:
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

        (move_exported_model_to_train if training else move_exported_model_to_eval)(model)


@dataclass(frozen=True)
class NamedEval:
    """``edgeir eval`` for one method or bundle: the figures and what was evaluated.

    Args:
        subject: Method name or bundle path.
        task: Task of the degradations.
        weights: Where the weights came from (the manifest's or the build's ``weights`` record).
        result: The figures.
        pairs: Number of evaluation crops, and their size.
        source: Data source of the evaluation split.
    """

    subject: str
    task: str
    weights: dict[str, Any]
    result: EvalResult
    pairs: int
    crop: int
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "task": self.task, "weights": self.weights, "pairs": self.pairs,
                "crop": self.crop, "source": self.source, **self.result.to_json()}


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def run_eval(subject: str, *, task: str | None = None, variant: str | None = None, weights: str | None = None,
             data: str | None = None, count: int = 6, crop: int = 128, seed: int = 0) -> NamedEval:
    """PSNR/SSIM against ground truth on the evaluation split, for a method (eager) or a bundle (artifact).

    ``subject`` is a bundle directory when it holds a manifest, else a method name. A method's
    model reports every exit (see the module docstring); a bundle reports every single-image
    program, at the program's input size.

    Raises:
        UsageError: for unknown names, a bundle whose artifact cannot run here, or unusable data.
    """
    from pathlib import Path

    from edgeir.bundle import MANIFEST
    from edgeir.data.datasets import evaluation_pairs, load_images
    from edgeir.discovery import methods

    images = load_images(data)
    if (Path(subject) / MANIFEST).is_file():
        return _eval_bundle(Path(subject), task, images, count, seed)
    from edgeir.runtime.reference import best_device
    from edgeir.weights.build import build_model_with_weights

    spec = methods().get(subject)
    variant = spec.variant(variant or spec.default_variant).name
    task = spec.check_task(task or spec.default_task)
    io = spec.io(variant, task)
    crop = round_up(crop, io.size_multiple * io.scale)
    model, info = build_model_with_weights(subject, variant, task, weights)
    pairs = evaluation_pairs(task, source=images, crop=crop, count=count, seed=seed, in_channels=io.in_channels,
                             scale=io.scale)
    result = evaluate(model, pairs, device=best_device())
    return NamedEval(f"{subject} {variant}", task, info.to_json(), result, len(pairs), crop, images.source)


def run_on_photo(runner, program: dict[str, Any], programs: Sequence[dict[str, Any]], photo) -> np.ndarray:
    """Run an artifact's ``program`` on one photo batch as an app does: its other inputs are zeros or
    the outputs of the artifact's own programs on the same photo (:mod:`edgeir.runtime.feeds`)."""
    from edgeir.runtime.feeds import fill_inputs

    by_name = {p["name"]: p for p in programs}
    photo = np.ascontiguousarray(photo, np.float32)

    def from_program(name: str) -> np.ndarray:
        return runner.run(name, fill_inputs(by_name[name], photo, from_program))[0]

    return runner.run(program["name"], fill_inputs(program, photo, from_program))[0]


def _eval_bundle(path, task, images, count: int, seed: int) -> NamedEval:
    from edgeir.bundle import Bundle
    from edgeir.data.datasets import evaluation_pairs
    from edgeir.discovery import targets
    from edgeir.errors import UsageError
    from edgeir.runtime.feeds import photo_inputs, runs_on_photos
    from edgeir.target import require

    bundle = Bundle.open(path)
    bundle.verified()
    manifest = bundle.manifest
    if task is not None and task != manifest["task"]:
        raise UsageError(f"bundle {path} was exported for task {manifest['task']}, not {task}")
    target = targets().get(bundle.target)
    runner = require(target.runtime(bundle), f"the {bundle.target} artifact cannot run on this host")
    io = manifest["io"]
    exits: dict[str, dict[str, float]] = {}
    per_image: dict[str, dict[str, Any]] = {}
    input_psnr = None
    crop = 0
    for program in bundle.programs:
        if not runs_on_photos(program, bundle.programs) or program["outputs"][0]["kind"] != "image":
            continue
        _, channels, height, width = program["inputs"][photo_inputs(program)[0]]["shape"]
        if height != width:
            raise UsageError(f"edgeir eval needs a square program input; {program['name']} is {height}x{width}")
        crop = height * io["scale"]
        pairs = evaluation_pairs(manifest["task"], source=images, crop=crop, count=count, seed=seed,
                                 in_channels=channels, scale=io["scale"])
        name = program["name"]
        result = evaluate(lambda x, program=program: run_on_photo(runner, program, bundle.programs, x), pairs)
        exits[name] = result.exits[SINGLE_EXIT]
        input_psnr = result.input_psnr_db
        for record in result.images:
            per_image.setdefault(record["name"], {"name": record["name"]})[name] = record[SINGLE_EXIT]
    if not exits:
        raise UsageError(f"bundle {path} has no program that restores a photo to evaluate")
    result = EvalResult(exits, input_psnr, list(per_image.values()))
    return NamedEval(str(path), manifest["task"], manifest["weights"], result, count, crop, images.source)
