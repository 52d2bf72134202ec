"""``edgeir profile``: time every program of a bundle on this host and store the profile in the bundle."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeir import __version__
from edgeir.bundle import Bundle
from edgeir.discovery import targets
from edgeir.errors import UsageError
from edgeir.profiles.device import this_host
from edgeir.profiles.profile import Measurement, Profile
from edgeir.progress import progress_bar
from edgeir.target import Availability

DEFAULT_THREADS = (1,)


def max_threads() -> int:
    """The largest thread count ``profile`` accepts: 4x this host's cores, at least 64."""
    import os

    return max(64, 4 * (os.cpu_count() or 1))


def check_thread_counts(threads: Sequence[int]) -> None:
    """Raise UsageError for a thread count below 0 or above :func:`max_threads`."""
    bad = [t for t in threads if not 0 <= t <= max_threads()]
    if bad:
        raise UsageError(f"thread counts must be 0 (runtime default) to {max_threads()} "
                         f"(4x this host's cores, at least 64), got {', '.join(map(str, bad))}")
TRACE_RUNS = 3


def profile(
    bundle: str | Path | Bundle,
    *,
    program: str | None = None,
    threads: Sequence[int] | None = None,
    runs: int = 20,
    warmup: int = 3,
    ops: bool = True,
    seed: int = 0,
    trust_key: str | Path | None = None,
) -> tuple[Profile, Path]:
    """Time the bundle's programs on this host and write ``profiles/<host id>.json`` into the bundle.

    Each program runs ``warmup`` untimed and ``runs`` timed times per thread count, on seeded random
    inputs of the manifest's shapes (latency does not depend on pixel values). Per-operator rows come
    from separate runs with the runtime's profiler on, so profiler overhead never enters the samples.
    Where this host cannot run the format (Core ML on Linux) the profile is still written, with
    ``not_run`` saying why and no measurements.

    Args:
        bundle: Bundle directory (or an opened bundle).
        program: Only this program (all by default).
        threads: Thread counts to measure at (default: 1). 0 means the runtime's default.
        runs: Timed runs per program and thread count.
        warmup: Untimed runs before them.
        ops: Also collect per-operator rows where the runtime can.
        seed: Seed of the random inputs.
        trust_key: ed25519 public key (PEM) the bundle must be signed with.

    Returns:
        The profile and the path it was written to.

    Raises:
        UsageError: for an unknown program or bad counts.
        IntegrityError: for a bundle that fails the integrity check (:mod:`edgeir.integrity`).
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    if runs < 1 or warmup < 0:
        raise UsageError(f"--runs must be at least 1 and --warmup at least 0 (got {runs} and {warmup})")
    threads = tuple(threads) if threads else DEFAULT_THREADS
    check_thread_counts(threads)
    digest = bundle.verified(trust_key)
    programs = [bundle.program(program)] if program else bundle.programs
    target = targets().get(bundle.target)
    device = this_host()
    runtime = {"target": bundle.target, "backend": bundle.manifest.get("backend", ""), "edgeir": __version__}
    base = dict(bundle=bundle.path.name, device=device, artifact_sha256=dict(bundle.manifest.get("files", {})),
                source="edgeir profile", artifact_digest=digest,
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    measurements = []
    rng = np.random.default_rng(seed)
    with progress_bar(total=len(programs) * len(threads) * (runs + warmup), desc="profile") as bar:
        for count in threads:
            runner = target.profile_runner(bundle, count)
            if isinstance(runner, Availability):
                result = Profile(runtime=runtime, not_run=runner.reason, **base)
                return result, result.save(bundle.path)
            runtime.update(name=runner.runtime, version=runner.version())
            for entry in programs:
                inputs = [rng.random(tuple(spec["shape"]), dtype=np.float32) for spec in entry["inputs"]]
                measurements.append(_measure(runner, entry, inputs, runs, warmup, ops, bar))
    result = Profile(runtime=runtime, measurements=tuple(measurements), **base)
    return result, result.save(bundle.path)


def _measure(runner, entry, inputs, runs: int, warmup: int, ops: bool, bar) -> Measurement:
    name = entry["name"]
    memory = PeakMemory()
    for _ in range(warmup):
        runner.run(name, inputs)
        bar.update()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(name, inputs)
        samples.append((time.perf_counter() - start) * 1000.0)
        bar.update()
    peak = memory.peak_mb()
    rows: list[dict] = []
    if ops:
        with tempfile.TemporaryDirectory(prefix="edgeir-trace-") as workdir:
            rows = runner.trace_ops(name, inputs, min(runs, TRACE_RUNS), Path(workdir))
    return Measurement(program=name, input_shape=tuple(entry["inputs"][0]["shape"]), threads=runner.threads,
                       warmup=warmup, samples_ms=tuple(samples), peak_memory_mb=peak, memory_note=memory.note,
                       notes=tuple(runner.notes), ops=tuple(rows))


class PeakMemory:
    """Peak resident memory of this process from now on.

    On Linux the kernel's high-water mark (``VmHWM``) is reset first (``/proc/self/clear_refs``), so the
    figure is the peak RSS while the program ran, including the interpreter and the loaded runtime.
    Elsewhere it is how far ``ru_maxrss`` (the process's lifetime peak) rose, which reads 0 when an
    earlier phase peaked higher.
    """

    def __init__(self) -> None:
        self._reset = _reset_high_water_mark()
        self._start = _max_rss_mb()
        self.note = ("process peak RSS (VmHWM, reset before the runs) while running: includes the interpreter and "
                     "runtime" if self._reset else
                     "growth of the process's lifetime peak RSS (ru_maxrss) during the runs")

    def peak_mb(self) -> float:
        if self._reset:
            return _vm_hwm_mb()
        return max(0.0, _max_rss_mb() - self._start)


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _vm_hwm_mb() > 0
    except OSError:
        return False


def _vm_hwm_mb() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0
