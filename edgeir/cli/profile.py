"""``edgeir profile BUNDLE``: latency, peak memory and per-operator rows on this host."""

from __future__ import annotations

import argparse

from edgeir.cli.common import TRUST_KEY_HELP


def _threads(text: str) -> list[int]:
    from edgeir.errors import UsageError
    from edgeir.profiles.measure import check_thread_counts

    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}") from None
    try:
        check_thread_counts(counts)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return counts


def _count(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= 100_000:
            raise argparse.ArgumentTypeError(f"must be {low} to 100000, got {value}")
        return value

    return parse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "profile", help="measure latency, peak memory and per-operator time of a bundle on this host",
        description="Run every program of the bundle (warm-up, then timed runs) and write min/p50/p90/max latency, "
                    "peak memory and, where the runtime gives them, per-operator rows (ONNX Runtime profiler, "
                    "ExecuTorch ETDump) to BUNDLE/profiles/<host-id>.json. The profile says it was measured on "
                    "this host, not on a phone. Core ML cannot run on Linux: the profile then records why and the "
                    "command exits 0 after saying so. To store numbers measured on a phone, use "
                    "'edgeir import-profile'.")
    parser.add_argument("bundle", help="bundle directory written by 'edgeir export'")
    parser.add_argument("--program", default=None, help="only this program (default: every program)")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="comma-separated thread counts, e.g. 1,2,4 (default 1; 0 = the runtime's default)")
    parser.add_argument("--runs", type=_count(1), default=20,
                        help="timed runs per program and thread count (default 20)")
    parser.add_argument("--warmup", type=_count(0), default=3, help="untimed runs first (default 3)")
    parser.add_argument("--no-ops", dest="ops", action="store_false", help="skip the per-operator profiler runs")
    parser.add_argument("--trust-key", default=None, metavar="PEM", help=TRUST_KEY_HELP)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.profiles.measure import profile

    result, path = profile(args.bundle, program=args.program, threads=args.threads, runs=args.runs,
                           warmup=args.warmup, ops=args.ops, trust_key=args.trust_key)
    if args.quiet:
        return 0
    print(f"{result.bundle} on {result.device.id} ({result.device.chip}, {result.device.cores} cores, "
          f"{result.device.os}): measured on {result.measured_on}")
    if result.not_run:
        print(f"  NOT MEASURED: {result.not_run}")
    for m in result.measurements:
        lat = m.latency_ms()
        memory = "n/a" if m.peak_memory_mb is None else f"{m.peak_memory_mb:.0f} MiB"
        print(f"  {m.program} {'x'.join(map(str, m.input_shape))} threads={m.threads}: "
              f"p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms (min {lat['min']:.2f}, max {lat['max']:.2f}, "
              f"{len(m.samples_ms)} runs), peak RSS {memory}")
        for row in m.ops[:5]:
            print(f"    {row['share'] * 100:5.1f}%  {row['per_run_ms']:.3f} ms/run  {row['op']}  {row['name']}")
        for note in m.notes:
            print(f"    note: {note}")
    print(f"wrote {path}")
    return 0
