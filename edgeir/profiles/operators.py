"""Per-operator rows and per-run latencies from runtime profiler output.

Two formats, whether written here by ``edgeir profile`` or on a phone and imported:

* ONNX Runtime profiling JSON (``SessionOptions.enable_profiling``): Chrome-trace events; ``model_run``
  events time whole runs, ``*_kernel_time`` node events time operators.
* ExecuTorch ETDump (``enable_etdump``), read with the devtools ``Inspector``: ``Method::execute``
  events time whole runs; the other events are operators outside delegates and delegate calls
  (``DELEGATE_CALL``). Without an ETRecord, operator names are the runtime's kernel names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeir.errors import UsageError

ET_RUN_EVENT = "Method::execute"
ET_BOOKKEEPING = {"Method::init", "Program::load_method", ET_RUN_EVENT}


@dataclass(frozen=True)
class RuntimeTrace:
    """What a profiler file says: the duration of each run and per-operator rows."""

    runs_ms: tuple[float, ...]
    ops: tuple[dict[str, Any], ...]
    method: str = ""


def op_rows(totals: dict[tuple[str, str], list[float]], runs: int) -> tuple[dict[str, Any], ...]:
    """Rows ``name, op, calls, total_ms, mean_ms, per_run_ms, share``, slowest first.

    Args:
        totals: Durations in ms of every call, keyed by (event name, operator type).
        runs: Number of runs the calls were spread over (for ``per_run_ms``).
    """
    grand = sum(sum(v) for v in totals.values()) or 1.0
    rows = [
        {"name": name, "op": op, "calls": len(times), "total_ms": round(sum(times), 4),
         "mean_ms": round(sum(times) / len(times), 4), "per_run_ms": round(sum(times) / max(runs, 1), 4),
         "share": round(sum(times) / grand, 4)}
        for (name, op), times in totals.items() if times
    ]
    return tuple(sorted(rows, key=lambda r: -r["total_ms"]))


def read_ort_profile(path: str | Path) -> RuntimeTrace:
    """Read an ONNX Runtime profiling JSON file.

    Raises:
        UsageError: if the file is not ONNX Runtime profiling output.
    """
    try:
        events = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read ONNX Runtime profile {path}: {exc}") from exc
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise UsageError(f"{path} is not ONNX Runtime profiling JSON (expected a list of trace events)")
    runs = [e["dur"] / 1000.0 for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if not runs:
        raise UsageError(f"{path} has no 'model_run' events: it is not ONNX Runtime profiling output of a run")
    totals: dict[tuple[str, str], list[float]] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            name = event["name"][: -len("_kernel_time")]
            op = event.get("args", {}).get("op_name", "?")
            totals.setdefault((name, op), []).append(event.get("dur", 0) / 1000.0)
    return RuntimeTrace(tuple(runs), op_rows(totals, len(runs)))


def read_etdump(path: str | Path, method: str | None = None) -> RuntimeTrace:
    """Read an ExecuTorch ETDump file with the devtools Inspector.

    Args:
        path: ETDump file.
        method: Method whose runs to keep (the first with ``Method::execute`` events when None).

    Raises:
        UsageError: if the Inspector cannot read the file or it holds no timed runs.
    """
    from executorch.devtools import Inspector

    try:
        inspector = Inspector(etdump_path=str(path))
    except Exception as exc:  # the Inspector raises bare Exceptions / flatbuffer errors on foreign files
        raise UsageError(f"cannot read ETDump {path}: {exc}") from exc
    runs: list[float] = []
    totals: dict[tuple[str, str], list[float]] = {}
    for block in inspector.event_blocks:
        for event in block.events:
            raw = list(event.perf_data.raw) if event.perf_data is not None else []
            if event.name == ET_RUN_EVENT:
                runs.extend(raw)
            elif event.name not in ET_BOOKKEEPING and raw:
                op = ",".join(event.op_types) or (event.delegate_backend_name or "")
                name = event.name if not event.is_delegated_op else f"{event.name} [{event.delegate_backend_name}]"
                totals.setdefault((name, op or event.name), []).extend(raw)
    if not runs:
        raise UsageError(f"ETDump {path} holds no '{ET_RUN_EVENT}' events (was the program run with ETDump on?)")
    return RuntimeTrace(tuple(runs), op_rows(totals, len(runs)), method or "")
