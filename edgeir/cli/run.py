"""``edgeir run BUNDLE IMAGE -o OUT``: restore one image with an artifact."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="restore an image with an artifact bundle")
    parser.add_argument("bundle", help="bundle directory written by 'edgeir export'")
    parser.add_argument("image", help="input image (PNG, JPEG, TIFF, ...)")
    parser.add_argument("-o", "--output", required=True, help="output image path")
    parser.add_argument("--program", default=None, help="program to run (default: the bundle's first)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.runimage import run

    path = run(args.bundle, args.image, args.output, program=args.program)
    if not args.quiet:
        print(f"wrote {path}")
    return 0
