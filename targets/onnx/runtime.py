"""Running ONNX programs with ONNX Runtime, and timing them with its profiler."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.target import ProfileRunner, Runner


def program_file(name: str, count: int) -> str:
    """File of one program: ``model.onnx`` alone, ``<program>.onnx`` for several."""
    return "model.onnx" if count == 1 else f"{name}.onnx"


class OnnxRunner(Runner):
    """ONNX Runtime sessions on the CPU, one per program."""

    runtime = "onnxruntime"

    def __init__(self, bundle_path: Path, programs: list[dict[str, Any]], threads: int = 0,
                 optimization: str = "all") -> None:
        self._paths = {p["name"]: bundle_path / program_file(p["name"], len(programs)) for p in programs}
        self.optimization = optimization
        self._sessions = {name: _session(path, threads, optimization=optimization)
                          for name, path in self._paths.items()}

    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        session = self._sessions[program]
        feeds = {meta.name: np.ascontiguousarray(x, dtype=np.float32)
                 for meta, x in zip(session.get_inputs(), inputs, strict=True)}
        return [np.asarray(o, dtype=np.float32) for o in session.run(None, feeds)]


def _session(path: Path, threads: int, profile_prefix: str | None = None, optimization: str = "all"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if optimization == "basic":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxProfileRunner(OnnxRunner, ProfileRunner):
    """ONNX Runtime sessions with ``intra_op_num_threads`` set; operators timed by ORT's profiler."""

    def __init__(self, bundle_path: Path, programs: list[dict[str, Any]], threads: int,
                 optimization: str = "all") -> None:
        super().__init__(bundle_path, programs, threads, optimization)
        self.threads = threads
        self.notes = () if threads else ("threads=0: ONNX Runtime's default intra-op thread count",)

    def trace_ops(self, program, inputs, runs, workdir):
        from edgeir.profiles.operators import read_ort_profile

        session = _session(self._paths[program], self.threads, str(Path(workdir) / f"ort-{program}"),
                           optimization=self.optimization)
        feeds = {meta.name: np.ascontiguousarray(x, dtype=np.float32)
                 for meta, x in zip(session.get_inputs(), inputs, strict=True)}
        for _ in range(runs):
            session.run(None, feeds)
        return list(read_ort_profile(session.end_profiling()).ops)

