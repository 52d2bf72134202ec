"""What the integrity check costs each command: time to check a bundle whose artifact is N MB.

Every command that reads a bundle (run, verify, profile, gate, report, import-profile) re-hashes
every artifact file and the manifest first (``edgeir.integrity``). This writes a synthetic bundle
with one artifact of each size (random bytes: sha256 speed does not depend on content), checks it
``--repeats`` times and prints the median time and the throughput, beside a same-run sgemm
GFLOP/s figure (numpy, 1024^3, float32) so the host's speed is on record. The file is read from the
page cache after the first check, as on a CI runner that just exported it.

    python bench/integrity_overhead.py --sizes 1,10,100 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def sgemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="artifact sizes in MB (10^6 bytes)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import hashlib
    import os

    from edgeir.bundle import Bundle, write_json
    from edgeir.integrity import seal

    print(f"sgemm 1024^3 float32 (numpy): {sgemm_gflops():.1f} GFLOP/s")
    print("artifact MB | check median ms | MB/s")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="edgeir-integrity-") as work:
            root = Path(work) / "bundle"
            root.mkdir()
            payload = os.urandom(size * 1_000_000)
            (root / "model.onnx").write_bytes(payload)
            manifest = {"schema_version": 1, "method": "m", "target": "onnx",
                        "files": {"model.onnx": hashlib.sha256(payload).hexdigest()}}
            write_json(root / "manifest.json", seal(manifest))
            bundle = Bundle.open(root)
            times = [_timed(bundle.verified) for _ in range(args.repeats)]
            median = statistics.median(times)
            print(f"{size:11d} | {median * 1000:15.1f} | {size / median:6.0f}")


if __name__ == "__main__":
    main()
