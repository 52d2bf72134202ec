"""Collect per-region facts of every FlexIR exit, to compare adaptive stopping rules offline.

For each region (a program-shaped tile) it runs the eager stages once through every exit and keeps
what any candidate rule could look at (the degraded region's score, each exit's score, how much
each block changes the feature, how far consecutive exits' outputs are apart) and what it is
judged by (each exit's squared error against the clean region). Rules are then replayed on these
records without running the network again (``--rules``), each with its exact MAC count, since the
MACs of a decision depend only on which blocks and heads it runs.

Two sets of regions:

- ``bench``: the built-in photos, centre crop 2R x 2R, degraded for the task, 4 regions of R
  (the configuration of ``bench/flexir_adaptive.py``);
- ``check``: the acceptance check's photos (astronaut and coffee, 256x256 crops at (64, 64), noise
  sigma 25 from ``default_rng(7)``, uint8), tiled like ``edgeir run`` with R x R tiles; the
  replay blends the chosen exits' tiles as ``edgeir run`` does.

    OMP_NUM_THREADS=1 .venv/bin/python bench/flexir_rule_study.py --collect --out bench/out
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def region_facts(driver, crop: np.ndarray, groups: int) -> dict:
    """Every exit's output of one (1, C, R, R) region, with the features' relative changes."""
    from edgeir.plugins.flexir.adaptive import sharpness_score

    shallow = driver.run("stem", [crop])[0]
    feature = shallow
    outs, dfeat = [], []
    for k in range(1, groups + 1):
        new = driver.run(f"block_{k}", [feature])[0]
        dfeat.append(float(np.linalg.norm(new - feature) / max(np.linalg.norm(feature), 1e-12)))
        feature = new
        outs.append(driver.run(f"head_{k}", [feature, shallow, crop])[0])
    return {"outs": np.stack([o[0] for o in outs]), "dfeat": np.array(dfeat),
            "score_in": sharpness_score(crop[0]), "scores": np.array([sharpness_score(o[0]) for o in outs])}


def collect(args: argparse.Namespace) -> Path:
    import torch

    import edgeir
    from edgeir.data.photos import builtin_photos, degrade, fit_to
    from edgeir.plugins.flexir import adaptive
    from edgeir.runtime.tiling import plan_tiles, restore_tiled

    torch.set_num_threads(args.threads)
    model = edgeir.build_model("flexir", variant=args.variant, task=args.task, weights=args.weights)
    groups = model.config.groups
    driver = adaptive.EagerStages(model)
    r = args.region
    records: dict[str, list] = {k: [] for k in ("set", "photo", "index", "score_in", "scores", "dfeat", "mse", "outs",
                                              "clean", "noisy")}

    def add(set_name, photo, index, crop, clean):
        facts = region_facts(driver, crop, groups)
        records["set"].append(set_name)
        records["photo"].append(photo)
        records["index"].append(index)
        records["score_in"].append(facts["score_in"])
        records["scores"].append(facts["scores"])
        records["dfeat"].append(facts["dfeat"])
        records["mse"].append(((np.clip(facts["outs"], 0, 1) - clean[None]) ** 2).mean(axis=(1, 2, 3)))
        records["outs"].append(facts["outs"].astype(np.float32))
        records["clean"].append(clean.astype(np.float32))
        records["noisy"].append(crop[0].astype(np.float32))

    for index, (name, photo) in enumerate(builtin_photos()):
        clean = fit_to(photo, 2 * r, 2 * r)
        noisy, _ = degrade(clean, args.task, index)
        image = np.ascontiguousarray(noisy.transpose(2, 0, 1)[None], dtype=np.float32)
        truth = clean.transpose(2, 0, 1)
        crops, _ = adaptive.split(image, 4)
        for i, crop in enumerate(crops):
            rr, cc = divmod(i, 2)
            add("bench", name, i, crop, truth[:, rr * r:(rr + 1) * r, cc * r:(cc + 1) * r])
        print(f"bench {name}: done", flush=True)

    for index, (crop, clean) in enumerate(adaptive.calibration_regions(args.task, (r, r))):
        add("calib", "calibration", index, crop, clean)
    print(f"calibration: {sum(1 for s in records['set'] if s == 'calib')} regions", flush=True)

    if args.task == "denoise25":
        import skimage.data as data

        rng = np.random.default_rng(7)
        overlap = min(2 * model.config.window, r // 4)
        for name in ("astronaut", "coffee"):
            im = getattr(data, name)()[64:320, 64:320].astype(np.float64)
            noisy = np.clip(im + rng.normal(0, 25, im.shape), 0, 255).round().astype(np.uint8)
            plan = plan_tiles(256, 256, (r, r), overlap, model.config.window, 1)
            tiles: list[np.ndarray] = []
            restore_tiled(noisy, lambda b, tiles=tiles: tiles.append(b) or b, (r, r), overlap,
                          model.config.window)
            positions = [(top, left) for top in plan.rows for left in plan.cols]
            for i, (tile, (top, left)) in enumerate(zip(tiles, positions, strict=True)):
                clean = im[top:top + r, left:left + r].transpose(2, 0, 1) / 255.0
                add("check", name, i, tile, clean)
            print(f"check {name}: {len(tiles)} tiles", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"flexir_rule_study_{args.variant}_{args.task}.npz"
    np.savez_compressed(path, **{k: np.array(v) for k, v in records.items()},
                        meta=json.dumps({"weights": str(args.weights), "region": r, "groups": groups}))
    print(f"wrote {path}")
    return path


class ReplayRunner:
    """Serves one region's recorded stage outputs, so the real controller replays a rule exactly."""

    def __init__(self, outs: np.ndarray) -> None:
        self.outs = outs

    def run(self, program: str, inputs):
        if program.startswith("head_"):
            return [self.outs[int(program[5:]) - 1][None]]
        return [np.zeros(1, dtype=np.float32)]  # stem and block outputs: only passed along


def sequential(outs: np.ndarray, rule: str, accept: float, threshold: float, costs, exits) -> tuple[int, int]:
    """(exit, MACs) of the sequential rules, which score every exit on the way (Alg. 2 literally).

    ``patience``: stop at exit k >= 2 once |Omega_k - Omega_(k-1)| < (accept / h) * Omega_(k-1).
    ``relative`` (edgeir's earlier rule): exit k >= 2 passes when Omega_k > h * Omega_1.
    """
    from edgeir.plugins.flexir.adaptive import sharpness_score

    scores = []
    for k in exits:
        scores.append(sharpness_score(outs[k - 1]))
        if len(scores) == 1 and rule == "relative" and threshold < 1:
            break  # Omega_1 > h * Omega_1
        if len(scores) > 1:
            if rule == "relative" and scores[-1] > threshold * scores[0]:
                break
            if rule == "patience" and abs(scores[-1] - scores[-2]) < accept / threshold * scores[-2]:
                break
    return k, costs.stem + k * costs.block + len(scores) * costs.head


def replay(data, mask, rule, threshold, costs, exits):
    """(outputs, exits taken, MACs per region) of ``rule`` at ``threshold`` on the recorded regions.

    The controller's own rules run through :func:`region_exit` on a runner that serves the
    recorded outputs; ``("patience", a)`` and ``("relative", None)`` through :func:`sequential`.
    """
    from edgeir.plugins.flexir.adaptive import region_exit

    outs, taken, macs = [], [], []
    for i in np.flatnonzero(mask):
        if isinstance(rule, tuple):
            k, spent = sequential(data["outs"][i], rule[0], rule[1], threshold, costs, exits)
            out = data["outs"][i][k - 1][None]
        else:
            out, k, _, spent = region_exit(ReplayRunner(data["outs"][i]), data["noisy"][i][None], rule, threshold,
                                           costs)
        outs.append(out[0])
        taken.append(k)
        macs.append(spent)
    return outs, taken, macs


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def judge(data, set_name, outs, macs, full_macs, r):
    """Mean PSNR over the set's photos (as the bench or the check computes it) and the MACs fraction."""
    from edgeir.evaluation.metrics import psnr

    mask = data["set"] == set_name
    photos = data["photo"][mask]
    cleans = data["clean"][mask]
    values = []
    if set_name == "check":
        import skimage.data as skd

        from edgeir.runtime.tiling import restore_tiled

        rng = np.random.default_rng(7)
        for name in ("astronaut", "coffee"):
            im = getattr(skd, name)()[64:320, 64:320].astype(np.float64)
            noisy = np.clip(im + rng.normal(0, 25, im.shape), 0, 255).round().astype(np.uint8)
            queue = [o for o, p in zip(outs, photos, strict=True) if p == name]
            it = iter(queue)
            restored = restore_tiled(noisy, lambda b, it=it: next(it)[None], (r, r), min(16, r // 4), 8)
            values.append(psnr_u8(np.clip(restored * 255, 0, 255).round(), im.round()))
    elif set_name == "bench":
        for name in dict.fromkeys(photos):
            parts = [o for o, p in zip(outs, photos, strict=True) if p == name]
            truth = [c for c, p in zip(cleans, photos, strict=True) if p == name]
            img = np.concatenate([np.concatenate(parts[0:2], 2), np.concatenate(parts[2:4], 2)], 1)
            ref = np.concatenate([np.concatenate(truth[0:2], 2), np.concatenate(truth[2:4], 2)], 1)
            values.append(psnr(np.clip(img, 0, 1)[None], ref[None]))
    else:
        mse = np.mean([np.mean((np.clip(o, 0, 1) - c) ** 2) for o, c in zip(outs, cleans, strict=True)])
        values.append(float(10 * np.log10(1 / mse)))
    return float(np.mean(values)), float(sum(macs) / (len(macs) * full_macs))


def calibrate_tradeoff(values: Sequence[float], errors: np.ndarray, exits: Sequence[int], costs: Sequence[float],
                       budget_db: float, rule: str = "input", levels: int = 41,
                       calibration: Mapping[str, Any] | None = None) -> Any:
    """A candidate calibration (not the shipped one): accept scores that spend the fewest MACs on the
    calibration regions within ``budget_db`` of the deepest exit there (at h = 1).

    Args:
        values: Each calibration region's score (:func:`calibration_scores`).
        errors: (regions, exits) mean squared error of each exit's output against the clean region.
        exits: The exits, ascending (the columns of ``errors``).
        costs: MACs of each exit (any unit; only ratios matter).
        budget_db: PSNR the calibration regions may lose against the deepest exit, pooled over regions.
        levels: Candidate accept scores are this many quantiles of ``values``, 0 to 1.

    Every non-increasing choice of accept scores among the candidates is tried; the cheapest within
    the budget wins (ties: the smaller loss). The quantile rule (:func:`calibrate`) spreads the regions
    evenly whatever the exits are worth; this one looks at what each exit does to these regions.
    """
    from itertools import combinations_with_replacement

    from edgeir.plugins.flexir.adaptive import StoppingRule

    exits = tuple(sorted(exits))
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if e.shape != (v.size, len(exits)) or c.size != len(exits):
        raise ValueError(f"errors must be (regions, exits) = {(v.size, len(exits))} and costs one per exit")
    candidates = np.unique(np.round(np.quantile(v, np.linspace(0.0, 1.0, levels)), 6))[::-1]
    full_mse = float(e[:, -1].mean())
    best: tuple[float, float, tuple[float, ...]] | None = None
    for accept in combinations_with_replacement(candidates, len(exits) - 1):  # descending: non-increasing
        taken = np.full(v.size, len(exits) - 1)
        for j in range(len(exits) - 2, -1, -1):
            taken = np.where(v > accept[j], j, taken)
        loss = 10.0 * np.log10(float(e[np.arange(v.size), taken].mean()) / full_mse)
        if loss <= budget_db:
            key = (float(c[taken].mean()), loss, tuple(float(a) for a in accept))
            best = key if best is None or key[:2] < best[:2] else best
    if best is None:  # nothing within the budget but taking the deepest exit everywhere
        best = (float(c[-1]), 0.0, (float(candidates[0]),) * (len(exits) - 1))
    return StoppingRule(rule, exits, best[2], {**(calibration or {}), "regions": int(v.size),
                                               "budget_db": budget_db,
                                               "calibration_loss_db": round(best[1], 4),
                                               "calibration_macs_fraction": round(best[0] / float(c[-1]), 4)})


def study(args: argparse.Namespace) -> None:
    import edgeir
    from edgeir.plugins.flexir import adaptive

    path = Path(args.out) / f"flexir_rule_study_{args.variant}_{args.task}.npz"
    data = dict(np.load(path))
    meta = json.loads(str(data["meta"]))
    r, groups = meta["region"], meta["groups"]
    model = edgeir.build_model("flexir", variant=args.variant, task=args.task, weights="random")
    costs = adaptive.StageCosts.from_model(model, (r, r))
    exits = tuple(range(1, groups + 1))
    full = costs.regular(groups)
    calib = data["set"] == "calib"
    rules = {}
    for name in ("ladder", "input"):
        values = data["score_in"][calib] if name == "input" else data["scores"][calib][:, 0]
        rules[name] = adaptive.calibrate(list(values), exits, name)
    exit_costs = [costs.regular(k) for k in exits]
    for budget in (float(b) for b in args.budgets.split(",") if b):
        rules[f"input-tradeoff-{budget:g}dB"] = calibrate_tradeoff(
            list(data["score_in"][calib]), data["mse"][calib], exits, exit_costs, budget, "input")
    sc = data["scores"][calib]
    rules["patience"] = ("patience", float(np.median(np.abs(np.diff(sc, axis=1)) / sc[:, :-1])))
    rules["relative"] = ("relative", None)
    print({k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in rules.items()})
    sets = [s for s in ("bench", "check", "calib") if (data["set"] == s).any()]
    full_psnr = {}
    for s in sets:
        mask = data["set"] == s
        full_psnr[s] = judge(data, s, list(data["outs"][mask][:, groups - 1]), [full] * int(mask.sum()), full, r)[0]
        per_exit = [judge(data, s, list(data["outs"][mask][:, k]), [1] * int(mask.sum()), 1, r)[0]
                    for k in range(groups)]
        print(f"{s}: {int(mask.sum())} regions; PSNR per exit (everywhere): "
              + " / ".join(f"{p:.3f}" for p in per_exit))
    thresholds = [float(t) for t in args.thresholds.split(",")]
    results = {}
    for name, rule in rules.items():
        for s in sets:
            print(f"rule {name} on {s} (full model {full_psnr[s]:.3f} dB)")
            print("| h | mean exit | MACs vs full | max region MACs vs full | PSNR - full (dB) |")
            for t in thresholds:
                mask = data["set"] == s
                outs, taken, macs = replay(data, mask, rule, t, costs, exits)
                p, frac = judge(data, s, outs, macs, full, r)
                results.setdefault(name, {}).setdefault(s, []).append(
                    {"h": t, "mean_exit": float(np.mean(taken)), "macs": frac, "psnr_delta": p - full_psnr[s]})
                print(f"| {t} | {np.mean(taken):.2f} | {frac:.3f} | {max(macs) / full:.3f} | {p - full_psnr[s]:+.3f} |")
    # Oracle (knows the clean regions): per region the exit minimising MSE + lambda * MACs, for a
    # sweep of lambda; the frontier no score-based rule can beat (pooled-MSE PSNR over the set).
    for s in sets:
        mask = data["set"] == s
        mse = data["mse"][mask]
        cost = np.array([costs.regular(k) / full for k in exits])
        print(f"oracle on {s}: | MACs vs full | PSNR - full (pooled MSE) |")
        base = 10 * np.log10(1 / mse[:, -1].mean())
        for lam in (1e-2, 3e-3, 1e-3, 5e-4, 3e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 0):
            pick = np.argmin(mse + lam * cost[None], axis=1)
            chosen = mse[np.arange(len(pick)), pick]
            print(f"|  {cost[pick].mean():.3f} | {10 * np.log10(1 / chosen.mean()) - base:+.3f} |")
    (Path(args.out) / f"flexir_rule_study_{args.variant}_{args.task}.json").write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default="denoise25")
    parser.add_argument("--weights", default=None, help="default: the shipped weights")
    parser.add_argument("--region", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collect", action="store_true")
    parser.add_argument("--study", action="store_true", help="replay the rules on the collected records")
    parser.add_argument("--thresholds", default="0.5,0.8,0.9,1.0,1.05,1.1,1.15,1.5,2")
    parser.add_argument("--budgets", default="0.01,0.02,0.05",
                        help="calibration PSNR budgets (dB) of the trade-off-calibrated input rule to replay too")
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    if args.collect:
        collect(args)
    if args.study:
        study(args)


if __name__ == "__main__":
    main()
