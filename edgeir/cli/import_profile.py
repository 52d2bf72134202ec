"""``edgeir import-profile BUNDLE FILE``: store latency measured on a phone in the bundle."""

from __future__ import annotations

import argparse

from edgeir.cli.common import TRUST_KEY_HELP


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-profile", help="store a profile measured on a device (ETDump, ONNX Runtime JSON, app JSON)",
        description="Import latency measured on a device into BUNDLE/profiles/<device>.json, marked as measured on "
                    "the target device. Formats: ExecuTorch ETDump, ONNX Runtime profiling JSON (both need --device "
                    "and --sha256 of the artifact file the device ran), or the app JSON of docs/profiles.md (which "
                    "carries both). The sha256 must be one of the bundle's artifact files, else exit 2.")
    parser.add_argument("bundle", help="bundle directory the device ran")
    parser.add_argument("file", help="ETDump (.etdp), ONNX Runtime profiling JSON, or app JSON")
    parser.add_argument("--format", choices=("etdump", "ort", "app"), default=None,
                        help="file format (default: detected from the content)")
    parser.add_argument("--device", default=None, help="device id, e.g. pixel8-tensor-g3 (ETDump / ORT files)")
    parser.add_argument("--chip", default=None, help="SoC or CPU model of the device")
    parser.add_argument("--os", default=None, help="operating system and version of the device")
    parser.add_argument("--sha256", default=None, help="sha256 of the artifact file the device ran")
    parser.add_argument("--program", default=None, help="program that ran (default: the bundle's first)")
    parser.add_argument("--threads", type=int, default=None, help="threads the device's runtime used, if known")
    parser.add_argument("--trust-key", default=None, metavar="PEM", help=TRUST_KEY_HELP)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.profiles.importing import import_profile

    result, path = import_profile(args.bundle, args.file, format=args.format, device=args.device, chip=args.chip,
                                  os=args.os, sha256=args.sha256, program=args.program, threads=args.threads,
                                  trust_key=args.trust_key)
    if not args.quiet:
        for m in result.measurements:
            lat = m.latency_ms()
            print(f"{result.bundle} on {result.device.id} ({result.measured_on}): {m.program} p50 {lat['p50']:.2f} ms,"
                  f" p90 {lat['p90']:.2f} ms over {len(m.samples_ms)} runs; {len(m.ops)} operator rows")
        print(f"wrote {path}")
    return 0
