"""``edgeir run BUNDLE INPUT -o OUTPUT``: restore a photo, or a folder of photos, of any size."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeir.cli.common import TRUST_KEY_HELP

DESCRIPTION = """\
Restore photos of any size with an exported artifact. Each photo is cut into overlapping tiles of
the program's shape (larger tiles, up to 512 pixels or the whole photo, for ONNX programs with
dynamic H/W), the tiles run through the artifact and are blended with feathered weights; a
progress bar counts the tiles. PNG, JPEG, TIFF and WebP; 8- and 16-bit; grey, RGB and RGBA.
EXIF orientation is applied; alpha is passed through untouched; bit depth (where the output
format holds it) and the ICC profile are kept. Outputs are written atomically.

With --adaptive H (bundles exported with --exits, for methods with an early-exit controller such as
FlexIR), every tile is one region that picks its own exit: the controller runs the staged programs
exit by exit and stops at the first whose output passes the threshold H (the method's docs define
H and its baseline). Per photo it prints the exits taken and the compute spent against the deepest
exit; --report writes that as JSON.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="restore photos of any size with an artifact bundle",
                                   description=DESCRIPTION)
    parser.add_argument("bundle", help="bundle directory written by 'edgeir export'")
    parser.add_argument("image", help="input photo, or a folder: every image directly inside it (not recursive)")
    parser.add_argument("-o", "--output", required=True,
                        help="output file (its extension picks the format), or folder for a folder of photos")
    parser.add_argument("--program", default=None,
                        help="program to run (default: the bundle's first, or the tile program its global state "
                             "feeds, e.g. DiffIR's restore)")
    parser.add_argument("--pointer", type=int, default=None, metavar="P",
                        help="for bundles exported with --exits: Regular Branch Inference through exit P "
                             "(the program exit_P)")
    parser.add_argument("--adaptive", type=float, default=None, metavar="H",
                        help="adaptive inference with threshold H (e.g. 1.05): each tile takes its own exit")
    parser.add_argument("--report", default=None, metavar="FILE",
                        help="with --adaptive: write per photo the exits taken and compute spent as JSON")
    parser.add_argument("--trust-key", default=None, metavar="PEM", help=TRUST_KEY_HELP)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.errors import BatchError, UsageError
    from edgeir.runtime.restore import restore, restore_adaptive

    program = args.program
    if args.pointer is not None:
        if program is not None:
            raise UsageError("give --program or --pointer, not both")
        program = f"exit_{args.pointer}"
    if args.adaptive is not None:
        if program is not None:
            raise UsageError("--adaptive picks the exits itself; drop --program/--pointer")
        return _adaptive(args, restore_adaptive(args.bundle, args.image, args.output, threshold=args.adaptive,
                                                trust_key=args.trust_key))
    if args.report is not None:
        raise UsageError("--report goes with --adaptive")
    try:
        paths = restore(args.bundle, args.image, args.output, program=program, trust_key=args.trust_key)
    except BatchError as exc:  # some photos of a folder failed: say what was written and each failure
        if not args.quiet:
            for path in exc.written:
                print(f"wrote {path}")
        for path, reason in exc.failures:
            print(f"edgeir: failed: {path.name}: {reason}", file=sys.stderr)
        raise
    if not args.quiet:
        for path in paths:
            print(f"wrote {path}")
    return 0


def _adaptive(args: argparse.Namespace, results) -> int:
    if args.report:
        from edgeir.bundle import write_json

        write_json(Path(args.report), {"bundle": str(args.bundle), "threshold": args.adaptive,
                                       "photos": {str(path): summary for path, summary in results}})
    if not args.quiet:
        for path, s in results:
            counts = ", ".join(f"exit {k}: {s['exits'].count(k)}" for k in sorted(set(s["exits"])))
            print(f"wrote {path}: {s['regions']} regions ({counts}), mean exit {s['mean_exit']:.2f}, "
                  f"{s['macs'] / 1e9:.2f} GMACs = {100 * s['macs_fraction']:.0f}% of the deepest exit's")
    return 0
