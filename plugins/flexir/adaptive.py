"""FlexIR inference: Regular Branch Inference and Adaptive Inference (Alg. 2) with one controller.

The controller talks to anything with ``run(program, inputs) -> outputs`` over numpy arrays: an
exported bundle's runner (ExecuTorch, ONNX Runtime) running the staged programs ``stem``,
``block_k`` and ``head_k``, or :class:`EagerStages` running the same steps on the eager model.
So what is measured on the host is what an app running the artifact does.

Adaptive Inference: the image is cut into ``regions`` equal regions (default 4, a 2x2 grid; each
region has the program's shape); each region takes the exit its stopping rule picks from the
gradient sharpness score Omega (Eq. 6-8) and the threshold h.

The stopping rule (:class:`StoppingRule`): Alg. 2 fast-outputs a region whose score exceeds
the threshold, and a larger threshold is more cautious (Table 5). The paper gives its thresholds
only as factors (1.00x-1.15x) of an unnamed baseline; here the baseline is absolute, calibrated per
task and program size on photos the benches do not measure on (:func:`calibrate`) and stored in
the bundle's manifest: exit k (every exit but the last) passes when ``score > h * accept[k]``, the
region takes the first exit that passes, and the last exit is the fallback. Each exit's accept
score is lower than the one before, so a deeper exit accepts a flatter region.

The score is Eq. 6-8 computed on the degraded region itself (rule ``input``, the default), or on
the region's exit-1 output (rule ``ladder``, Alg. 2's literal score). Both decide once, so the
controller computes only the head of the exit taken (``input``: never more than the full model)
or exit 1's head plus that one (``ladder``: never more than the full model plus one head).
Scoring every exit on the way, as Alg. 2 reads literally, costs a head per exit passed: +14% over
the full model for a region that runs to the last of four exits. ``bench/flexir_rule_study.py``
measures these rules against patience on consecutive scores and edgeir's earlier factor over
Omega_1 (docs/methods/flexir.md): ``input`` saves the most at a given PSNR, and since its decision
depends only on the input pixels, an artifact and the eager model take the same exits by
construction.
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
    region_macs: list[int] = field(default_factory=list)

    @property
    def mean_exit(self) -> float:
        return float(np.mean(self.exits))

    def to_json(self) -> dict[str, Any]:
        return {"exits": self.exits, "mean_exit": round(self.mean_exit, 3), "macs": self.macs,
                "full_model_macs": self.full_macs, "macs_fraction": round(self.macs / self.full_macs, 4),
                "region_macs": self.region_macs,
                "scores": [[round(s, 4) for s in row] for row in self.scores]}


#: Built-in photos the stopping rule is calibrated on: scikit-image's, none of them among the photos
#: ``edgeir verify`` and the benches measure on (``edgeir.data.photos.BUILTIN_PHOTOS``).
CALIBRATION_PHOTOS = ("brick.png", "camera.png", "coins.png", "grass.png", "gravel.png", "ihc.png", "moon.png",
                      "retina.jpg")


def calibration_regions(task: str, size: tuple[int, int], *, per_side: int = 2,
                        photos: Sequence[str] = CALIBRATION_PHOTOS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded (1, 3, h, w) float32, clean (3, h, w)) regions of the calibration photos.

    Each photo's centre crop of up to ``per_side`` x ``per_side`` regions of ``size`` (fewer where
    the photo is smaller), degraded for ``task`` with a seed per photo.
    """
    from edgeir.data.imageio import read_image
    from edgeir.data.photos import degrade, fit_to, photo_dir

    h, w = size
    out = []
    for index, name in enumerate(photos):
        photo = read_image(photo_dir() / name)
        rows = max(1, min(per_side, photo.shape[0] // h))
        cols = max(1, min(per_side, photo.shape[1] // w))
        clean = fit_to(photo, rows * h, cols * w)
        noisy, _ = degrade(clean, task, 1000 + index)
        for r in range(rows):
            for c in range(cols):
                crop = noisy[r * h:(r + 1) * h, c * w:(c + 1) * w].transpose(2, 0, 1)[None]
                out.append((np.ascontiguousarray(crop, dtype=np.float32),
                            clean[r * h:(r + 1) * h, c * w:(c + 1) * w].transpose(2, 0, 1)))
    return out


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


RULES = ("input", "ladder")
#: The rule ``--exits`` exports calibrate and record (chosen by bench/flexir_rule_study.py).
DEFAULT_RULE = "input"


@dataclass(frozen=True)
class StoppingRule:
    """How a region's exit is chosen from the sharpness score Omega (Eq. 6-8) and the threshold h.

    Args:
        name: ``"input"``: the score is Omega of the degraded region itself: no head but the one
            taken, never more than the full model. ``"ladder"``: the score is Omega_1, the score of
            the region's exit-1 output: exit 1's head is computed first, at most one extra head.
        exits: The exits the rule chooses among, ascending; the last is the fallback.
        accept: One accept score per exit but the last: exit ``exits[j]`` passes when the score
            exceeds ``h * accept[j]``; the first that passes is taken. Non-increasing.
        calibration: How ``accept`` was obtained (photos, regions, size), for the manifest.

    A larger h is more cautious (Table 5): for every region, the exit taken never gets earlier as
    h grows, so the MACs spent never fall.
    """

    name: str
    exits: tuple[int, ...]
    accept: tuple[float, ...]
    calibration: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"unknown stopping rule '{self.name}'; rules: {', '.join(RULES)}")
        if list(self.exits) != sorted(set(self.exits)) or not self.exits:
            raise ValueError(f"exits must be ascending and distinct; got {list(self.exits)}")
        if len(self.accept) != len(self.exits) - 1:
            raise ValueError(f"a rule over exits {list(self.exits)} needs {len(self.exits) - 1} accept scores; "
                             f"got {list(self.accept)}")
        if any(b > a for a, b in zip(self.accept, self.accept[1:], strict=False)):
            raise ValueError(f"accept scores must not increase with the exit; got {list(self.accept)}")

    def exit_for(self, score: float, threshold: float) -> int:
        """The exit a region of this ``score`` takes at threshold h."""
        for k, level in zip(self.exits, self.accept, strict=False):
            if score > threshold * level:
                return k
        return self.exits[-1]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.name, "exits": list(self.exits), "accept": list(self.accept),
                **({"calibration": dict(self.calibration)} if self.calibration else {})}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> StoppingRule:
        return cls(str(record["rule"]), tuple(int(k) for k in record["exits"]),
                   tuple(float(a) for a in record["accept"]), dict(record.get("calibration", {})))


def adaptive_inference(runner: StagedRunner, image: np.ndarray, *, rule: StoppingRule, threshold: float,
                       costs: StageCosts, regions: int = 4, beta: float = BETA) -> AdaptiveResult:
    """Alg. 2, adaptive branch: per region, run to the exit the stopping rule picks, and no further.

    Args:
        runner: Runs ``stem``, ``block_k``, ``head_k`` on numpy arrays.
        image: (1, C, H, W) in [0, 1]; each of the ``regions`` crops must have the programs' shape.
        rule: The calibrated stopping rule (:func:`calibrate`, or a bundle's :func:`bundle_rule`).
        threshold: The threshold h (larger is more cautious).
        costs: MACs per stage, for the compute report.
    """
    crops, _ = split(image, regions)
    outputs, taken, scores, region_macs = [], [], [], []
    for crop in crops:
        out, k, score, spent = region_exit(runner, crop, rule, threshold, costs, beta)
        outputs.append(out)
        taken.append(k)
        scores.append([score])
        region_macs.append(spent)
    full = regions * costs.regular(rule.exits[-1])
    return AdaptiveResult(join(outputs, regions), taken, scores, sum(region_macs), full, region_macs)


def region_exit(runner: StagedRunner, crop: np.ndarray, rule: StoppingRule, threshold: float, costs: StageCosts,
                beta: float = BETA) -> tuple[np.ndarray, int, float, int]:
    """One region: (output, exit taken, the score the rule looked at, MACs spent).

    Runs ``stem`` and the blocks up to the exit taken once each, exit 1's head when the rule
    scores it (``ladder``), and the taken exit's head (unless that is exit 1's, already run).
    """
    shallow = runner.run("stem", [crop])[0]
    feature, done, macs = shallow, 0, costs.stem

    def head(k: int) -> np.ndarray:
        nonlocal feature, done, macs
        while done < k:
            done += 1
            feature = runner.run(f"block_{done}", [feature])[0]
            macs += costs.block
        macs += costs.head
        return runner.run(f"head_{k}", [feature, shallow, crop])[0]

    if rule.name == "input":
        score = sharpness_score(crop[0], beta)
        k = rule.exit_for(score, threshold)
        return head(k), k, score, macs
    first = head(rule.exits[0])
    score = sharpness_score(first[0], beta)
    k = rule.exit_for(score, threshold)
    return (first if k == rule.exits[0] else head(k)), k, score, macs


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


def bundle_rule(manifest: Mapping[str, Any]) -> StoppingRule:
    """The calibrated stopping rule an ``--exits`` bundle records (in its ``stem`` program's metadata).

    Raises:
        ValueError: if the bundle has no staged programs or records no rule (exported before the
            rule was calibrated at export): export it again with ``--exits``.
    """
    exits = staged_exits(manifest)
    for program in manifest["recipe"]["programs"]:
        if program["name"] == "stem" and "stopping_rule" in program.get("metadata", {}):
            rule = StoppingRule.from_json(program["metadata"]["stopping_rule"])
            if tuple(rule.exits) != tuple(exits):
                raise ValueError(f"the bundle's stopping rule covers exits {list(rule.exits)} but its staged "
                                 f"programs have exits {list(exits)}; export it again with --exits")
            return rule
    raise ValueError("the bundle records no calibrated stopping rule (exported by an older edgeir); "
                     "export it again with --exits")


def bundle_controller(runner: StagedRunner, manifest: Mapping[str, Any], threshold: float):
    """``MethodSpec.adaptive``: Alg. 2 on one program-shaped region through a bundle's staged programs."""
    rule = bundle_rule(manifest)
    costs = StageCosts.from_manifest(manifest)
    full = costs.regular(rule.exits[-1])

    def run_region(region: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        out, k, score, spent = region_exit(runner, region, rule, threshold, costs)
        return out, {"exit": k, "macs": spent, "full_macs": full, "full_program": f"exit_{rule.exits[-1]}",
                     "scores": [round(score, 4)]}

    return run_region


def calibration_scores(runner: StagedRunner | None, regions: Sequence[np.ndarray], exits: Sequence[int],
                       rule: str = DEFAULT_RULE,
                       beta: float = BETA) -> list[float]:
    """The score the rule looks at for each calibration region: Omega_1 (``ladder``, stem + the
    first exit only) or Omega(input) (``input``, no network)."""
    exits = tuple(sorted(exits))
    if rule == "input":
        return [sharpness_score(crop[0], beta) for crop in regions]
    probe = StoppingRule("ladder", exits, (1.0,) * (len(exits) - 1))
    # h = -inf: every score passes the first exit, so only stem, block_1.. and its head run.
    return [region_exit(runner, crop, probe, float("-inf"), StageCosts(0, 0, 0), beta)[2] for crop in regions]


def calibrate(values: Sequence[float], exits: Sequence[int], rule: str = DEFAULT_RULE,
              calibration: Mapping[str, Any] | None = None) -> StoppingRule:
    """A rule's accept scores from calibration scores (:func:`calibration_scores`).

    accept[j] (exit ``exits[j]``) is the (1 - (j + 1) / n) quantile of the scores, n = the number
    of exits, so that at h = 1 the calibration regions spread evenly over the exits (a quarter each
    with four); h < 1 moves regions to earlier exits, h > 1 to later ones, and over h = 0.5 .. 2 the
    accept scores span the calibration regions' score range.
    """
    exits = tuple(sorted(exits))
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        raise ValueError("no calibration scores")
    n = len(exits)
    # Rounded as the manifest stores them, so the eager model and a bundle decide on the same numbers.
    accept = tuple(round(float(np.quantile(v, 1.0 - (j + 1) / n)), 6) for j in range(n - 1))
    return StoppingRule(rule, exits, accept, {**(calibration or {}), "regions": int(v.size),
                                              "quantiles": [round(1.0 - (j + 1) / n, 4) for j in range(n - 1)]})


def calibrate_model(model, task: str, size: tuple[int, int], exits: Sequence[int], rule: str = DEFAULT_RULE,
                    per_side: int = 2) -> StoppingRule:
    """Calibrate ``rule`` for the eager ``model`` at program size ``size`` (what ``--exits`` export records).

    Scores come from :func:`calibration_regions` (``CALIBRATION_PHOTOS``, degraded for ``task``):
    ``input`` needs no network, ``ladder`` runs each region's stem, first block(s) and first head
    on the eager stages. Cached on the model per (task, size, exits, rule).
    """
    key = (task, tuple(size), tuple(sorted(exits)), rule, per_side)
    cache = model.__dict__.setdefault("_stopping_rule_cache", {})
    if key not in cache:
        regions = [crop for crop, _ in calibration_regions(task, tuple(size), per_side=per_side)]
        was_training = model.training
        try:
            values = calibration_scores(EagerStages(model) if rule != "input" else None, regions, exits, rule)
        finally:
            model.train(was_training)
        cache[key] = calibrate(values, exits, rule, {"photos": list(CALIBRATION_PHOTOS), "task": task,
                                                     "size": list(size), "score": SCORE_NOTE[rule]})
    return cache[key]


SCORE_NOTE = {"ladder": "Omega (Eq. 6-8) of the region's exit-1 output",
              "input": "Omega (Eq. 6-8) of the degraded region"}
