"""FlexIR inference: Regular Branch Inference and Adaptive Inference (Alg. 2) with one controller.

The controller talks to anything with ``run(program, inputs) -> outputs`` over numpy arrays: an
exported bundle's runner (ExecuTorch, ONNX Runtime) running the staged programs ``stem``,
``block_k`` and ``head_k``, or :class:`EagerStages` running the same steps on the eager model.
So what is measured on the host is what an app running the artifact does.

Adaptive Inference: the image is cut into ``regions`` equal regions (default 4, a 2x2 grid; each
region has the program's shape). Per region the controller runs ``stem``, then for k = 1, 2, ...
``block_k`` and ``head_k``, scores the exit's output with the gradient sharpness score Omega
(Eq. 6-8) and stops at the first exit whose score passes the threshold (or at the last exit).

Threshold and its baseline (the paper gives thresholds only as 1.00x-1.15x, Table 5): the baseline
of a region is the score of its exit-1 output, Omega_1, which the controller computes anyway. Exit
k >= 2 passes when ``Omega_k > threshold * Omega_1``: a deeper exit is accepted once its output is
sharper than the cheapest restoration by the threshold's factor. A larger threshold asks for more
sharpening and so runs deeper (Table 5's direction: time grows with the threshold); a threshold
below 1 lets exit 1 pass at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

BETA = 0.61
ROBERTS_NOTE = "Roberts cross on luminance (ITU-R BT.601), clipped to [0, 1]"


def sharpness_score(image: np.ndarray, beta: float = BETA) -> float:
    """Omega = MG^beta * VG^(1-beta) of one image (Eq. 6-8; Zhan et al. 2018).

    Args:
        image: (C, H, W) or (H, W) array in [0, 1].

    G is the Roberts gradient magnitude; G_c its centre after removing B = round(min(h, w)/16) rows
    and columns (half on each side); MG = max(G_c); VG = (max(G_c) - min(G_c)) / mean(G).
    """
    x = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if x.ndim == 3:
        x = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2] if x.shape[0] == 3 else x.mean(axis=0)
    gx = x[:-1, :-1] - x[1:, 1:]
    gy = x[1:, :-1] - x[:-1, 1:]
    g = np.sqrt(gx * gx + gy * gy)
    h, w = g.shape
    b = round(min(x.shape) / 16)
    top, left = b // 2, b // 2
    centre = g[top:h - (b - top), left:w - (b - left)] if b else g
    mg = float(centre.max())
    mean = float(g.mean())
    vg = (mg - float(centre.min())) / mean if mean > 0 else 0.0
    return float(mg ** beta * vg ** (1.0 - beta))


class StagedRunner(Protocol):
    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class EagerStages:
    """The staged programs (``stem``, ``block_k``, ``head_k``, ``exit_k``) on the eager model."""

    runtime = "eager"

    def __init__(self, model) -> None:
        self.model = model.eval()

    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs]
        stage, _, number = program.partition("_")
        with torch.no_grad():
            if program == "stem":
                out = self.model.stem(*tensors)
            elif stage == "block":
                out = self.model.block(int(number), *tensors)
            elif stage == "head":
                out = self.model.head(int(number), *tensors)
            elif stage == "exit":
                out = self.model(*tensors, pointer=int(number))
            else:
                raise KeyError(f"no program '{program}'")
        return [out.numpy()]


@dataclass(frozen=True)
class StageCosts:
    """MACs of one region's stem, one group (block) and one exit head."""

    stem: int
    block: int
    head: int

    @classmethod
    def from_model(cls, model, size: tuple[int, int]) -> StageCosts:
        parts = model._part_macs(tuple(size))
        return cls(stem=parts["stem"] + parts["patch_norm"], block=parts["group"], head=parts["head"])

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> StageCosts:
        """From the staged programs' metadata an ``--exits`` bundle records."""
        macs = {p["name"]: p.get("metadata", {}).get("macs") for p in manifest["recipe"]["programs"]}
        if macs.get("stem") is None or macs.get("block_2", macs.get("block_1")) is None or macs.get("head_1") is None:
            raise ValueError("the bundle records no per-stage MACs; export it with --exits")
        return cls(stem=macs["stem"], block=macs.get("block_2") or macs["block_1"], head=macs["head_1"])

    def regular(self, pointer: int) -> int:
        return self.stem + pointer * self.block + self.head


@dataclass
class AdaptiveResult:
    """What adaptive inference did: the image, the exit per region, scores and compute spent."""

    image: np.ndarray
    exits: list[int]
    scores: list[list[float]] = field(default_factory=list)
    macs: int = 0
    full_macs: int = 0

    @property
    def mean_exit(self) -> float:
        return float(np.mean(self.exits))

    def to_json(self) -> dict[str, Any]:
        return {"exits": self.exits, "mean_exit": round(self.mean_exit, 3), "macs": self.macs,
                "full_model_macs": self.full_macs, "macs_fraction": round(self.macs / self.full_macs, 4),
                "scores": [[round(s, 4) for s in row] for row in self.scores]}


def grid(regions: int) -> tuple[int, int]:
    """Rows x columns of a near-square grid with ``regions`` cells (4 -> 2x2)."""
    rows = int(np.floor(np.sqrt(regions)))
    while regions % rows:
        rows -= 1
    return rows, regions // rows


def split(image: np.ndarray, regions: int) -> tuple[list[np.ndarray], tuple[int, int]]:
    """(1, C, H, W) -> ``regions`` equal crops, row-major. Raises ValueError if H or W does not divide."""
    rows, cols = grid(regions)
    _, _, h, w = image.shape
    if h % rows or w % cols:
        raise ValueError(f"a {h}x{w} image does not split into a {rows}x{cols} grid of equal regions")
    rh, rw = h // rows, w // cols
    return [image[:, :, r * rh:(r + 1) * rh, c * rw:(c + 1) * rw] for r in range(rows) for c in range(cols)], (rh, rw)


def join(parts: Sequence[np.ndarray], regions: int) -> np.ndarray:
    rows, cols = grid(regions)
    return np.concatenate([np.concatenate(parts[r * cols:(r + 1) * cols], axis=3) for r in range(rows)], axis=2)


def adaptive_inference(runner: StagedRunner, image: np.ndarray, *, exits: Sequence[int], threshold: float,
                       costs: StageCosts, regions: int = 4, beta: float = BETA) -> AdaptiveResult:
    """Alg. 2, adaptive branch: per region, step through ``exits`` until the score passes.

    Args:
        runner: Runs ``stem``, ``block_k``, ``head_k`` on numpy arrays.
        image: (1, C, H, W) in [0, 1]; each of the ``regions`` crops must have the programs' shape.
        exits: Exits that have a head program, ascending (the last one is the fallback).
        threshold: Factor over the region's exit-1 score (see the module docstring).
        costs: MACs per stage, for the compute report.
    """
    exits = sorted(exits)
    crops, _ = split(image, regions)
    outputs, taken, scores, macs = [], [], [], 0
    for crop in crops:
        shallow = runner.run("stem", [crop])[0]
        macs += costs.stem
        feature, done, row, baseline, out, k = shallow, 0, [], None, None, exits[-1]
        for k in exits:
            while done < k:
                done += 1
                feature = runner.run(f"block_{done}", [feature])[0]
                macs += costs.block
            out = runner.run(f"head_{k}", [feature, shallow, crop])[0]
            macs += costs.head
            score = sharpness_score(out[0], beta)
            row.append(score)
            baseline = score if baseline is None else baseline
            if score > threshold * baseline:
                break
        outputs.append(out)
        taken.append(k)
        scores.append(row)
    full = regions * costs.regular(exits[-1])
    return AdaptiveResult(join(outputs, regions), taken, scores, macs, full)


def regular_inference(runner: StagedRunner, image: np.ndarray, *, pointer: int, regions: int = 4) -> np.ndarray:
    """Alg. 2, regular branch: program ``exit_<pointer>`` on each region, then the union."""
    crops, _ = split(image, regions)
    return join([runner.run(f"exit_{pointer}", [crop])[0] for crop in crops], regions)


def staged_exits(manifest: Mapping[str, Any]) -> tuple[int, ...]:
    """Exits of a bundle whose staged programs (``stem``, ``block_k``, ``head_k``) are all there."""
    names = {p["name"] for p in manifest["recipe"]["programs"]}
    heads = sorted(int(n.split("_")[1]) for n in names if n.startswith("head_"))
    usable = tuple(k for k in heads if "stem" in names and all(f"block_{j}" in names for j in range(1, k + 1)))
    if not usable:
        raise ValueError("the bundle has no staged programs (stem, block_k, head_k); export it with --exits")
    return usable


def bundle_controller(runner: StagedRunner, manifest: Mapping[str, Any], threshold: float):
    """``MethodSpec.adaptive``: Alg. 2 on one program-shaped region through a bundle's staged programs."""
    exits = staged_exits(manifest)
    costs = StageCosts.from_manifest(manifest)

    def run_region(region: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        result = adaptive_inference(runner, region, exits=exits, threshold=threshold, costs=costs, regions=1)
        return result.image, {"exit": result.exits[0], "macs": result.macs, "full_macs": result.full_macs,
                              "scores": [round(s, 4) for s in result.scores[0]]}

    return run_region
