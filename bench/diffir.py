"""DiffIR figures: MACs, latency of prior vs restore vs forward, and global-IPR tiling vs whole image.

    python bench/diffir.py macs                       # paper deblur at 256x256, next to Restormer's shape
    python bench/diffir.py latency --variant mobile --size 256 --targets onnx,executorch --runs 10
    python bench/diffir.py latency --targets eager --bundles artifacts/diffir-tiny-deblur-onnx-fp32
    python bench/diffir.py tiled --variant mobile     # PSNR on the built-in photos (eager model)

``macs`` counts with :func:`edgeir.evaluation.macs.count_macs` (torch's flop counter / 2). Restormer's count
is taken on a local construction of its shape (dim 48, blocks [4,6,6,8], 4 refinement blocks,
heads [1,2,4,8], FFN 2.66) built from DIRformer's blocks, minus the IPR modulation layers that
Restormer does not have (counted exactly and subtracted).

``latency`` exports the variant (seeded random weights: latency does not depend on the values)
and times each program of each artifact interleaved in one process, so the ratios come from one
run under the same load.

``tiled`` compares, per photo, the whole-image output with two tiled runs of the same model:
every tile with one IPR from the down-scaled whole photo (what ``edgeir run`` does), and every
tile with its own IPR (what a tiler without global state would do).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time

import numpy as np


def macs(args: argparse.Namespace) -> None:
    import torch

    from edgeir.evaluation.macs import count_macs
    from edgeir.plugins.diffir.model import DiffIR, DIRformer, config_for

    size = args.size
    torch.manual_seed(0)
    model = DiffIR(config_for("paper", "deblur")).eval()
    x = torch.rand(1, 3, size, size)
    noise = torch.zeros(1, 256)
    total = count_macs(model, x, noise)
    prior = count_macs(lambda a, b: model.prior(a, b), x, noise)  # type: ignore[arg-type]
    restore = count_macs(model.G, x, noise)
    shape = dataclasses.replace(config_for("paper", "deblur"), num_blocks=(4, 6, 6, 8), ffn_expansion_factor=2.66)
    restormer_like = DIRformer(shape).eval()
    with_modulation = count_macs(restormer_like, x, noise)
    modulation = sum(m.in_features * m.out_features for name, m in restormer_like.named_modules()
                     if isinstance(m, torch.nn.Linear) and name.endswith("kernel.0"))
    restormer = with_modulation - modulation
    print(f"MACs at {size}x{size} (edgeir.evaluation.macs.count_macs):")
    print(f"  DiffIR paper deblur forward : {total / 1e9:8.2f} G  (prior {prior / 1e9:.3f} G, "
          f"restore/DIRformer {restore / 1e9:.2f} G)")
    print(f"  Restormer shape (local)     : {restormer / 1e9:8.2f} G  (dim 48, [4,6,6,8], ref 4, FFN 2.66)")
    print(f"  ratio DiffIR / Restormer    : {total / restormer:8.3f}  (the DiffIR paper says 78%)")


def _time(run, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def latency(args: argparse.Namespace) -> None:
    import edgeir
    from edgeir.bundle import Bundle
    from edgeir.discovery import targets
    from edgeir.target import require

    out = args.output or tempfile.mkdtemp(prefix="diffir-bench-")
    runs = {}
    for path in args.bundles.split(",") if args.bundles else []:
        bundle = Bundle.open(path)
        runs[bundle.path.name] = (require(targets().get(bundle.target).runtime(bundle)), bundle)
    for target in args.targets.split(",") if args.targets else []:
        if target == "eager":
            runs["eager"] = (_EagerRunner(args.variant, args.task, args.size), _EagerRunner.bundle)
            continue
        bundle = edgeir.export("diffir", target, variant=args.variant, task=args.task, output=out,
                               input_size=(args.size, args.size))
        runner = require(targets().get(target).runtime(bundle))
        runs[target] = (runner, bundle)
        print(f"exported {bundle.path} ({bundle.manifest['stage_seconds']['export']:.0f} s)", flush=True)
    samples: dict[tuple[str, str], list[float]] = {}
    for target, (runner, bundle) in runs.items():
        for program in bundle.programs:
            inputs = [np.random.default_rng(0).random(spec["shape"], dtype=np.float32) for spec in program["inputs"]]
            runner.run(program["name"], inputs)  # warm-up
            samples[target, program["name"]] = []
    for _ in range(args.runs):  # interleaved: the same load for every program
        for target, (runner, bundle) in runs.items():
            for program in bundle.programs:
                inputs = [np.random.default_rng(0).random(spec["shape"], dtype=np.float32)
                          for spec in program["inputs"]]
                samples[target, program["name"]] += _time(
                    lambda r=runner, n=program["name"], i=inputs: r.run(n, i), 1)
    print(f"{args.runs} interleaved runs (p50 / min, ms); exports: diffir {args.variant} {args.task} "
          f"at {args.size}x{args.size}")
    for target in runs:
        forward = statistics.median(samples[target, "forward"])
        for program in ("prior", "restore", "forward"):
            values = samples[target, program]
            p50 = statistics.median(values)
            print(f"  {target:<40} {program:<8} {p50:9.1f} / {min(values):9.1f}   {p50 / forward:6.3f} x forward")


class _EagerRunner:
    """The eager model (torch, this host's threads) behind the runner interface, with a manifest-like
    program list."""

    runtime = "eager"
    bundle = None

    def __init__(self, variant: str, task: str, size: int) -> None:
        import torch

        import edgeir
        from edgeir.discovery import methods
        from edgeir.recipe import RecipeOptions

        torch.manual_seed(0)
        model = edgeir.build_model("diffir", variant=variant, task=task).eval()
        recipe = methods().get("diffir").recipe(model, RecipeOptions(variant=variant, task=task,
                                                                     input_size=(size, size)))
        self.modules = {p.name: p.module for p in recipe.programs}
        _EagerRunner.bundle = type("Programs", (), {"programs": [p.to_json() for p in recipe.programs]})()

    def run(self, program: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            return [self.modules[program](*[torch.from_numpy(x) for x in inputs]).numpy()]


def tiled(args: argparse.Namespace) -> None:
    import torch

    import edgeir
    from edgeir.data.photos import builtin_photos
    from edgeir.evaluation.metrics import psnr
    from edgeir.runtime.tiling import restore_tiled
    from edgeir.runtime.whole_photo import resize_area

    torch.manual_seed(0)
    model = edgeir.build_model("diffir", variant=args.variant, task="deblur").eval()
    tile, overlap, m = args.tile, args.tile // 4, 8

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32))

    print(f"diffir {args.variant} deblur (random init), tiles {tile}x{tile}, overlap {overlap}: PSNR vs whole image")
    print(f"{'photo':<20} {'size':>9} {'global IPR':>11} {'per-tile IPR':>13} {'IPR rel. err':>13}")
    rows = []
    with torch.no_grad():
        for name, photo in builtin_photos(args.photos):
            photo = photo[: photo.shape[0] // m * m, : photo.shape[1] // m * m]
            whole = model(t(photo))[0].numpy().transpose(1, 2, 0)
            ipr_whole = model.prior(t(photo))
            ipr_global = model.prior(t(resize_area(photo, tile, tile)))
            global_run = restore_tiled(photo, lambda b, z=ipr_global: model.restore(torch.from_numpy(b), z).numpy(),
                                       tile, overlap, m)
            local_run = restore_tiled(photo, lambda b: model(torch.from_numpy(b)).numpy(), tile, overlap, m)
            error = float((ipr_global - ipr_whole).norm() / ipr_whole.norm().clamp_min(1e-12))
            row = (psnr(global_run, whole), psnr(local_run, whole))
            rows.append(row)
            print(f"{name:<20} {f'{photo.shape[1]}x{photo.shape[0]}':>9} {row[0]:8.2f} dB {row[1]:10.2f} dB "
                  f"{error:13.4f}", flush=True)
    print(f"{'mean':<20} {'':>9} {np.mean([r[0] for r in rows]):8.2f} dB {np.mean([r[1] for r in rows]):10.2f} dB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("macs")
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(fn=macs)
    p = sub.add_parser("latency")
    p.add_argument("--variant", default="mobile")
    p.add_argument("--task", default="deblur")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--targets", default="onnx,executorch", help="targets to export to, and/or 'eager'")
    p.add_argument("--bundles", default=None, help="comma-separated DiffIR bundles to time as they are")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--output", default=None)
    p.set_defaults(fn=latency)
    p = sub.add_parser("tiled")
    p.add_argument("--variant", default="mobile")
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--photos", type=int, default=None)
    p.set_defaults(fn=tiled)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
