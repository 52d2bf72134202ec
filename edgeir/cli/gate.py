"""``edgeir gate GATES.toml``: check accuracy, latency and size rules; exit 1 when one fails."""

from __future__ import annotations

import argparse

from edgeir.cli.common import TRUST_KEY_HELP


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "gate", help="check rules over bundles and profiles (CI gate); exit 1 when a rule fails",
        description="Check every [[rule]] of a gate file (PSNR vs reference, PSNR drop, eval PSNR, p50/p90 latency "
                    "on a device, peak memory, size, delegation coverage) on the bundles its globs match. Prints a "
                    "table and writes JUnit XML and a Markdown summary. Exit codes: 0 all rules hold, 1 a rule "
                    "failed (or its measurement is missing), 2 the gate file is wrong (invalid TOML, unknown key, "
                    "bundle glob matching nothing; the message names the line). Format: docs/gates.md.")
    parser.add_argument("gates", help="gate file (TOML)")
    parser.add_argument("--junit", default=None,
                        help="JUnit XML path (default: [gate] junit, else <gate-file-stem>-junit.xml beside it)")
    parser.add_argument("--markdown", default=None,
                        help="Markdown summary path (default: [gate] markdown, else <stem>-summary.md beside it)")
    parser.add_argument("--trust-key", default=None, metavar="PEM", help=TRUST_KEY_HELP)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.errors import GateFailed
    from edgeir.gates.render import tally, text_table
    from edgeir.gates.rules import run_gate

    report = run_gate(args.gates, junit=args.junit, markdown=args.markdown, trust_key=args.trust_key)
    if not args.quiet:
        print(text_table(report))
        print(f"wrote {report.junit} and {report.markdown}")
    if report.failed:
        raise GateFailed(f"{len(report.failed)} gate check(s) failed: {tally(report)}")
    return 0
