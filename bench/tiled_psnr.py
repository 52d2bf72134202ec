"""Tiled vs whole-image output of one model on the built-in photos: PSNR per photo.

The same model (seeded random init unless ``--weights``) runs once on the whole photo and once
tile by tile with the recipe's tile size and overlap; the difference is what tiling costs. Methods
with global operations (AnyIR: transposed channel attention, gated degradation statistics) see
only their tile, so they differ more than fully convolutional ones. With ``--bundle`` the
artifact's tiled output is compared with the whole-image eager reference too. Photos are cropped
to multiples of the method's size multiple and degraded for the task, as ``verify`` does.

    python bench/tiled_psnr.py --variant mobile
    python bench/tiled_psnr.py --variant mobile --bundle artifacts/anyir-mobile-allinone3-executorch-fp32
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="anyir")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--bundle", default=None, help="also run this bundle's artifact tiled")
    parser.add_argument("--photos", type=int, default=None)
    args = parser.parse_args(argv)

    from edgeir.bundle import Bundle
    from edgeir.data.photos import builtin_photos, degrade
    from edgeir.discovery import methods, targets
    from edgeir.evaluation.metrics import psnr
    from edgeir.recipe import RecipeOptions
    from edgeir.runtime.reference import ReferenceRunner
    from edgeir.runtime.restore import tile_policy
    from edgeir.target import require
    from edgeir.weights.build import build_model_with_weights

    spec = methods().get(args.method)
    task = args.task or spec.default_task
    model, _ = build_model_with_weights(args.method, args.variant, task, args.weights)
    recipe = spec.recipe(model, RecipeOptions(variant=args.variant, task=task))
    tile, program = recipe.tile, recipe.programs[0]
    scale = program.outputs[0].scale
    reference = ReferenceRunner(program.module)
    artifact = None
    if args.bundle:
        bundle = Bundle.open(args.bundle)
        policy = tile_policy(bundle, bundle.program())
        runner = require(targets().get(bundle.target).runtime(bundle))
        artifact = (policy, lambda x: runner.run(bundle.program()["name"], [x])[0])
    print(f"{args.method} {args.variant} {task}: tile {tile.size[1]}x{tile.size[0]}, overlap {tile.overlap}, "
          f"reference on {reference.device}")
    header = f"{'photo':<20} {'size':>10} {'tiles vs whole (eager)':>24}"
    print(header + (f" {'artifact tiled vs whole':>24}" if artifact else ""))
    for index, (name, photo) in enumerate(builtin_photos(args.photos)):
        m = tile.multiple
        photo = photo[: photo.shape[0] // m * m, : photo.shape[1] // m * m]
        degraded, _ = degrade(photo, task, index)
        whole = reference.run([np.ascontiguousarray(degraded.transpose(2, 0, 1)[None])])[0][0].transpose(1, 2, 0)
        tiled = reference.run_tiled(degraded, tile.size, tile.overlap, tile.multiple, scale)
        row = f"{name:<20} {f'{photo.shape[1]}x{photo.shape[0]}':>10} {psnr(tiled, whole):>21.2f} dB"
        if artifact:
            policy, run_tile = artifact
            from edgeir.runtime.tiling import restore_tiled

            got = restore_tiled(degraded, run_tile, policy.tile_for(*photo.shape[:2]), policy.overlap,
                                policy.multiple, policy.scale)
            row += f" {psnr(got, whole):>21.2f} dB"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
