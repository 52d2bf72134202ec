"""Peak memory of an ONNX int8 export (NNCF calibration), with and without returning freed heap pages.

Each export runs in its own child process, which reports its peak resident set size
(``ru_maxrss``) and wall time. ``--without-trim`` runs it once more with the engine's
``release_freed_memory`` (glibc ``malloc_trim`` before each calibration forward) replaced by a
no-op, to show what it saves; without it, resident memory grows by about one forward's
activations per calibration crop (FlexIR ``mobile`` at 128x128 was killed at 24 GB).

    OMP_NUM_THREADS=2 python bench/calibration_memory.py flexir --size 128
    OMP_NUM_THREADS=2 python bench/calibration_memory.py flexir --size 64 --without-trim
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = """
import json, resource, sys, time
import edgeir
from edgeir.quant import nncf_engine
method, variant, size, trim, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
if not trim:
    nncf_engine.release_freed_memory = lambda *inputs: inputs
start = time.perf_counter()
edgeir.export(method, "onnx", variant=variant, quant="int8", output=out, input_size=(size, size))
print(json.dumps({"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                  "seconds": round(time.perf_counter() - start, 1)}))
"""


def measure(method: str, variant: str, size: int, trim: bool) -> dict[str, float]:
    """Peak RSS (GB) and seconds of one ONNX int8 export in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", CHILD, method, variant, str(size), "1" if trim else "0", out],
                              capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--without-trim", action="store_true", help="also measure with the trim disabled")
    args = parser.parse_args(argv)
    print("| calibration | peak RSS (GB) | seconds |\n|---|---|---|")
    for trim in (True, False) if args.without_trim else (True,):
        row = measure(args.method, args.variant, args.size, trim)
        label = "malloc_trim before each forward" if trim else "no trim"
        print(f"| {label} | {row.get('peak_rss_gb', row.get('error'))} | {row.get('seconds', '')} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
