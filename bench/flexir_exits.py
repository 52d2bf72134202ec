"""FlexIR per-exit latency on this host (ExecuTorch XNNPACK and ONNX Runtime) and .pte size growth.

Exports ``flexir`` (default: mobile, denoise25, 256x256) with ``--exits all`` to ExecuTorch and
ONNX, times every ``exit_k`` and staged program with each runtime (median of ``--runs`` after one
warm-up, ``--threads`` threads), and compares the size of the all-exits ``.pte`` with a one-program
``.pte`` (the full model) to show whether weights are stored once or per method.

    OMP_NUM_THREADS=1 .venv/bin/python bench/flexir_exits.py --variant mobile --size 256 --out bench/out

Exporting is slow and timing wants a quiet machine: ``--export-only`` writes the bundles, and a
later ``--reuse`` run times the bundles already under ``--out`` instead of exporting again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def time_program(runner, program: dict, runs: int) -> float:
    rng = np.random.default_rng(0)
    inputs = [rng.random(spec["shape"], dtype=np.float32) for spec in program["inputs"]]
    runner.run(program["name"], inputs)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(program["name"], inputs)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--task", default="denoise25")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--targets", default="executorch,onnx")
    parser.add_argument("--exits", default="all")
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--export-only", action="store_true", help="write the bundles, time nothing")
    parser.add_argument("--reuse", action="store_true", help="time the bundles already under --out")
    args = parser.parse_args()

    import edgeir
    from edgeir.discovery import targets
    from edgeir.target import require

    out = Path(args.out)
    rows: dict[str, dict] = {}
    sizes = {}
    from edgeir.bundle import Bundle

    def bundle_for(target: str, folder: str, exits: str | None):
        if args.reuse:
            found = sorted((out / folder).glob(f"flexir-{args.variant}-{args.task}-{target}-*/manifest.json"))
            if found:
                return Bundle.open(found[-1].parent), None
        start = time.perf_counter()
        bundle = edgeir.export("flexir", target, variant=args.variant, task=args.task, output=out / folder,
                               input_size=(args.size, args.size), exits=exits, weights="random")
        return bundle, round(time.perf_counter() - start, 1)

    for target in args.targets.split(","):
        bundle, export_s = bundle_for(target, "all", args.exits)
        print(f"{target}: {bundle.path} ({export_s} s to export)" if export_s else f"{target}: reusing {bundle.path}",
              flush=True)
        if target == "executorch":
            single, _ = bundle_for(target, "single", None)
            sizes["executorch_forward_only_bytes"] = (single.path / "model.pte").stat().st_size
        if args.export_only:
            continue
        runner = require(targets().get(target).profile_runner(bundle, args.threads))
        for program in bundle.programs:
            meta = program.get("metadata", {})
            row = rows.setdefault(program["name"], {"macs_g": round(meta.get("macs", 0) / 1e9, 3),
                                                    "params_m": round(meta["params"] / 1e6, 3)
                                                    if "params" in meta else None})
            row[f"{target}_ms"] = round(time_program(runner, program, args.runs), 2)
        sizes[f"{target}_all_bytes"] = sum(f.stat().st_size for f in bundle.path.rglob("*") if f.is_file()
                                           and f.suffix in (".pte", ".onnx"))
        if export_s:
            sizes[f"{target}_export_s"] = export_s
    if args.export_only:
        return
    result = {"variant": args.variant, "task": args.task, "size": args.size, "threads": args.threads,
              "runs": args.runs, "programs": rows, "sizes": sizes}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"flexir_exits_{args.variant}_{args.size}.json").write_text(json.dumps(result, indent=2) + "\n")
    targets_ = args.targets.split(",")
    print("| program | params (M) | MACs (G) | " + " | ".join(f"{t} (ms)" for t in targets_) + " |")
    print("|---|---|---|" + "---|" * len(targets_))
    for name, row in rows.items():
        print(f"| {name} | {row['params_m'] or ''} | {row['macs_g']} | "
              + " | ".join(str(row.get(f'{t}_ms', '')) for t in targets_) + " |")
    print(json.dumps(sizes))


if __name__ == "__main__":
    main()
