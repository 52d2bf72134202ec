"""``edgeir verify BUNDLE``: artifact vs eager reference on real photos; writes verify.json."""

from __future__ import annotations

import argparse

from edgeir.cli.common import TRUST_KEY_HELP


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="compare an artifact with the eager float32 reference on built-in photos",
        description="Run the artifact and the eager reference (CUDA, else MPS, else CPU) on scikit-image's bundled "
                    "photos, degraded for the task, and write PSNR and max abs error to BUNDLE/verify.json. "
                    "Exits 5 when the artifact is below its precision's threshold.")
    parser.add_argument("bundle", help="bundle directory written by 'edgeir export'")
    parser.add_argument("--photos", type=int, default=4, help="number of built-in photos (default 4)")
    parser.add_argument("--weights", default=None, help="checkpoint, if the one recorded in the manifest moved")
    parser.add_argument("--trust-key", default=None, metavar="PEM", help=TRUST_KEY_HELP)
    parser.add_argument("--runtime", default=None,
                        help="run the artifact in this runtime of its target instead of the host's default "
                             "(the runtimes a target offers are listed by 'edgeir list')")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.runtime.verify import verify

    report = verify(args.bundle, photos=args.photos, weights=args.weights, trust_key=args.trust_key,
                    runtime=args.runtime)
    if args.quiet:
        return 0
    data = report.data
    if report.status == "not-run":
        print(f"{report.bundle.name}: NOT VERIFIED NUMERICALLY: {report.reason}")
        print(f"  structure: {_structure_line(data.get('structure', {}))}")
        return 0
    print(f"{report.bundle.name}: {report.status} (threshold {data['threshold_db']:.0f} dB; "
          f"reference on {data.get('reference_device', '?')}, artifact in {data['artifact_runtime']})")
    if data.get("artifact_runtime_note"):
        print(f"  runtime: {data['artifact_runtime_note']}")
    for name, result in data["programs"].items():
        if result["status"] == "not-run":
            print(f"  {name}: not run ({result['reason']})")
            continue
        print(f"  {name}: min {result['min_psnr_db']:.1f} dB, mean {result['mean_psnr_db']:.1f} dB, "
              f"max abs err {result['max_abs_err']:.2e} over {len(result['photos'])} photos")
        if result.get("reference_weights"):
            own, cost = result["reference_weights"], result["compression"]
            print(f"  {name}: reference holds the artifact's own weights ({own['compressed_weights']} compressed "
                  f"tensors {own['source']}); against the float reference (the compression's cost, not "
                  f"checked): reference {cost['min_reference_vs_float_db']:.1f} dB, artifact "
                  f"{cost['min_artifact_vs_float_db']:.1f} dB")
        if result.get("first_divergence", {}).get("summary"):
            print(f"  {name}: first departing op: {result['first_divergence']['summary']}")
        fake = result.get("fakequant")
        if fake:
            print(f"  {name}: three-way (min over photos): artifact vs float "
                  f"{fake['min_artifact_vs_float_db']:.1f} dB, "
                  f"fake-quant vs float {fake['min_fakequant_vs_float_db']:.1f} dB, artifact vs fake-quant "
                  f"{fake['min_artifact_vs_fakequant_db']:.1f} dB (tolerance {fake['tolerance_db']:.0f} dB)")
    if "accuracy_note" in data:
        print(f"  note: {data['accuracy_note']}")
    return 0


def _structure_line(structure: dict) -> str:
    parts = []
    if "inputs" in structure:
        parts.append("inputs " + ", ".join(f"{k}{v}" for k, v in structure["inputs"].items()))
        parts.append("outputs " + ", ".join(f"{k}{v}" for k, v in structure["outputs"].items()))
    for name, function in structure.get("functions", {}).items():
        parts.append(f"function {name}: {sum(function['op_counts'].values())} ops")
    return "; ".join(parts) or "n/a"
