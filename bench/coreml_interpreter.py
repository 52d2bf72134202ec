"""edgeir-mil (the interpreter of a saved Core ML package) against eager torch, in one run; and the op coverage.

Timing: exports one method to Core ML (default AnyIR ``mobile`` at 256x256, fp16), then times the
interpreter on the package and the eager float32 model on the same input, interleaved round by round,
with the same torch thread count. Prints both medians, their ratio, a same-run sgemm GFLOP/s and the
host's ISA flags, because absolute times are for this host only.

    python bench/coreml_interpreter.py --method anyir --variant mobile --size 256 --quant fp16 --runs 5

Coverage: ``--coverage DIR`` reads every ``model.mlpackage`` under DIR (one bundle per method, as
``edgeir export M --variant tiny --target coreml`` writes them) and prints the op type x method table
in Markdown (docs/coreml-interpreter.md holds the one measured).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def sgemm_gflops(n: int = 2048, runs: int = 3) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(runs))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def isa_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "neon")
    return " ".join(f for f in wanted if f" {f}" in flags) or "none of " + ",".join(wanted)


def time_interpreter(args) -> dict:
    import edgeir
    from edgeir.runtime.reference import ReferenceRunner
    from edgeir.runtime.verify import reference_program
    from edgeir.targets.coreml.runtime import MILRunner

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        bundle = edgeir.export(args.method, "coreml", variant=args.variant, quant=args.quant, output=out,
                               input_size=(args.size, args.size), weights=args.weights)
        export_s = time.perf_counter() - start
        program = bundle.programs[0]
        start = time.perf_counter()
        runner = MILRunner(bundle.path / "model.mlpackage", bundle.programs)
        load_s = time.perf_counter() - start
        eager = ReferenceRunner(reference_program(bundle.manifest, program["name"]), torch.device("cpu"))
        x = np.random.default_rng(0).random(program["inputs"][0]["shape"], dtype=np.float32)
        for _ in range(args.warmup):
            runner.run(program["name"], [x])
            eager.run([x])
        mil, ref = [], []
        for _ in range(args.runs):  # interleaved, so both see the same host load
            mil.append(_timed(lambda: runner.run(program["name"], [x])))
            ref.append(_timed(lambda: eager.run([x])))
        ops = sum(1 for op in runner.program.operations(runner.function(program["name"])) if op.op_type != "const")
    return {"method": args.method, "variant": args.variant, "size": args.size, "quant": args.quant,
            "threads": torch.get_num_threads(), "mil_ops": ops, "export_s": round(export_s, 1),
            "load_s": round(load_s, 2), "interpreter_ms": round(1e3 * statistics.median(mil), 1),
            "eager_ms": round(1e3 * statistics.median(ref), 1),
            "ratio": round(statistics.median(mil) / statistics.median(ref), 2),
            "sgemm_gflops": round(sgemm_gflops(), 1), "isa": isa_flags(), "runs": args.runs}


def coverage(root: Path) -> str:
    from edgeir.targets.coreml.mil import MILProgram

    table: dict[str, dict[str, int]] = {}
    methods = []
    for manifest in sorted(root.rglob("manifest.json")):
        data = json.loads(manifest.read_text())
        label = f"{data['method']} {data['quant']}"
        package = manifest.parent / "model.mlpackage"
        if not package.is_dir() or label in methods or data["quant"] == "fp32":  # fp32: the fp16 op set
            continue
        methods.append(label)
        for op, count in MILProgram(package).op_counts().items():
            table.setdefault(op, {})[label] = count
    lines = ["| op | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for op in sorted(table):
        lines.append(f"| `{op}` | " + " | ".join(str(table[op].get(m, "")) for m in methods) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="anyir")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--quant", default="fp16")
    parser.add_argument("--weights", default=None, help="default: the method's shipped weights (random if none)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--coverage", type=Path, default=None, help="print the op x method table of DIR's packages")
    args = parser.parse_args(argv)
    if args.coverage is not None:
        print(coverage(args.coverage))
        return 0
    print(json.dumps(time_interpreter(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
