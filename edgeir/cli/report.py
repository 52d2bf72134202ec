"""``edgeir report ARTIFACTS``: accuracy vs latency per device, crops, as PNG and one HTML page."""

from __future__ import annotations

import argparse

from edgeir.cli.common import TRUST_KEY_HELP


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="accuracy-vs-latency scatter per device (Pareto front), crops, PNG + HTML",
        description="Read every bundle under ARTIFACTS with its verify.json and profiles/, and write one "
                    "accuracy-vs-p50-latency scatter per device with the Pareto front, side-by-side crops "
                    "(degraded / reference / artifact / difference heat map) and a self-contained report.html. "
                    "Bundles without latency (Core ML on Linux) or accuracy are listed with the reason.")
    parser.add_argument("artifacts", nargs="?", default="artifacts", help="directory of bundles (default artifacts)")
    parser.add_argument("-o", "--output", default=None, help="output directory (default ARTIFACTS/report)")
    parser.add_argument("--no-crops", dest="crop", action="store_false",
                        help="skip the crops (they rebuild each reference model and run each artifact)")
    parser.add_argument("--trust-key", default=None, metavar="PEM", help=TRUST_KEY_HELP)
    parser.add_argument("--no-adaptive", dest="adaptive", action="store_false",
                        help="skip the compute-quality sweep of bundles with adaptive inference (early exits)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.report.build import report

    result = report(args.artifacts, output=args.output, crop=args.crop, adaptive=args.adaptive,
                    trust_key=args.trust_key)
    if not args.quiet:
        for note in result.notes:
            print(f"note: {note}")
        for path in result.pngs:
            print(f"wrote {path}")
        print(f"wrote {result.html}")
    return 0
