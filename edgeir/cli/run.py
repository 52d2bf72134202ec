"""``edgeir run BUNDLE INPUT -o OUTPUT``: restore a photo, or a folder of photos, of any size."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Restore photos of any size with an exported artifact. Each photo is cut into overlapping tiles of
the program's shape (larger tiles, up to 512 pixels or the whole photo, for ONNX programs with
dynamic H/W), the tiles run through the artifact and are blended with feathered weights; a
progress bar counts the tiles. PNG, JPEG, TIFF and WebP; 8- and 16-bit; grey, RGB and RGBA.
EXIF orientation is applied; alpha is passed through untouched; bit depth (where the output
format holds it) and the ICC profile are kept. Outputs are written atomically.
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
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.errors import UsageError
    from edgeir.runimage import restore

    program = args.program
    if args.pointer is not None:
        if program is not None:
            raise UsageError("give --program or --pointer, not both")
        program = f"exit_{args.pointer}"
    paths = restore(args.bundle, args.image, args.output, program=program)
    if not args.quiet:
        for path in paths:
            print(f"wrote {path}")
    return 0
