"""One benchmark, one table: every method against every runtime, edgeir against the stock exporters.

For each method (default: every registered one) at ``--variant`` and ``--size`` (``--small`` lists
methods measured at 128 instead), in one process and with ``--threads`` threads:

* contenders: eager PyTorch; ONNX Runtime fp32 and int8 (edgeir bundles); ExecuTorch XNNPACK fp32
  and int8 (edgeir bundles); and the *stock* exports of the same eager model, plain
  ``torch.onnx.export`` and plain ``to_edge_transform_and_lower(XnnpackPartitioner())`` with no
  edgeir rewrites or passes, so the table shows what edgeir adds;
* all contenders of a method timed interleaved round by round (ratios hold on a noisy host);
* per ExecuTorch artifact: delegate subgraphs, nodes outside, % of MACs delegated;
* export seconds per stage (edgeir's manifest stages; ExecuTorch's torch.export / delegate passes /
  lowering / serialisation);
* each artifact's GFLOP/s (2 x MACs / latency) beside a same-run sgemm GFLOP/s and the CPU's ISA
  flags (AVX2, AVX-512, VNNI), since int8 gains depend on them.

Each artifact runs the program a photo goes through, with inputs of its declared shapes (a
multi-input program such as DiffIR's ``forward`` gets all of its inputs). Bundles are kept under
``-o`` and reused when the run is repeated.

    OMP_NUM_THREADS=2 python bench/performance.py --methods nafnet restormer -o bench-out/perf

Prints Markdown tables; writes the rows to ``<output>/performance.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
EDGEIR_CONTENDERS = (("ort fp32", "onnx", "fp32"), ("ort int8", "onnx", "int8"),
                     ("et fp32", "executorch", "fp32"), ("et int8", "executorch", "int8"))
STOCK_CONTENDERS = ("stock ort fp32", "stock et fp32")


def isa_flags() -> dict[str, bool]:
    """Which of :data:`ISA_FLAGS` the CPU reports (``/proc/cpuinfo``; all False where it is unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {flag: False for flag in ISA_FLAGS}
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.split(":", 1)[-1].split())
    return {flag: flag in flags for flag in ISA_FLAGS}


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 ``n x n`` matrix product throughput of torch on this host, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def inputs_of(program: dict, seed: int = 0) -> list[np.ndarray]:
    """One array per declared input of a manifest program entry, uniform in its value range."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in program["inputs"]:
        low, high = spec.get("value_range") or (0.0, 1.0)
        arrays.append((rng.random(spec["shape"], dtype=np.float32) * (high - low) + low).astype(np.float32))
    return arrays


def stock_executorch(module, example: tuple, path: Path) -> dict:
    """Plain ``torch.export`` + ``to_edge_transform_and_lower(XnnpackPartitioner())``: no edgeir rewrites or passes."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from edgeir.targets.executorch.inspection import delegation_summary

    seconds = {}
    start = time.perf_counter()
    exported = torch.export.export(module.eval(), example, strict=False)
    seconds["torch_export"] = time.perf_counter() - start
    start = time.perf_counter()
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    seconds["to_edge_transform_and_lower"] = time.perf_counter() - start
    delegation = delegation_summary(edge.exported_program().graph_module)
    start = time.perf_counter()
    path.write_bytes(edge.to_executorch().buffer)
    seconds["to_executorch"] = time.perf_counter() - start
    return {"seconds": {k: round(v, 2) for k, v in seconds.items()}, "delegation": delegation}


def stock_onnx(module, example: tuple, path: Path) -> dict:
    """Plain ``torch.onnx.export`` (dynamo, default options) of the eager model."""
    start = time.perf_counter()
    torch.onnx.export(module.eval(), example, str(path), dynamo=True, external_data=False, verbose=False)
    return {"seconds": {"torch.onnx.export": round(time.perf_counter() - start, 2)}}


class _OrtCall:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # ORT's idle threads otherwise spin after each run and slow whichever contender runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: list[np.ndarray]):
        return self.session.run(None, dict(zip(self.names, inputs, strict=True)))


class _OrtRunner:
    """A bundle's ONNX programs, each an :class:`_OrtCall` (``run(program, inputs)`` like edgeir's runners)."""

    def __init__(self, bundle, threads: int) -> None:
        from edgeir.targets.onnx.runtime import program_file

        self.calls = {p["name"]: _OrtCall(bundle.path / program_file(p["name"], len(bundle.programs)), threads)
                      for p in bundle.programs}

    def run(self, program: str, inputs):
        return self.calls[program](list(inputs))


def combined_delegation(summaries: list[dict]) -> dict:
    """The delegation summaries of the programs a photo goes through, added up."""
    if len(summaries) == 1:
        return summaries[0]
    ops: dict[str, int] = {}
    for summary in summaries:
        for op, count in summary["non_delegated_ops"].items():
            ops[op] = ops.get(op, 0) + count
    return {key: sum(s.get(key, 0) for s in summaries)
            for key in ("delegate_subgraphs", "non_delegated_nodes", "delegated_nodes", "non_delegated_macs")} | \
        {"non_delegated_ops": ops}


def _run_staged(runner, program: dict, programs: list[dict], inputs: list[np.ndarray]):
    from edgeir.evaluation.accuracy import run_on_photo

    return run_on_photo(runner, program, programs, inputs[0])


def staged_photo_program(bundle) -> dict | None:
    """The program that restores a photo from the outputs of the bundle's other programs, if any."""
    from edgeir.runtime.feeds import runs_on_photos

    for program in bundle.programs:
        if program["outputs"][0]["kind"] == "image" and runs_on_photos(program, bundle.programs):
            return program
    return None


def source_programs(program: dict) -> list[str]:
    """The programs whose outputs ``program`` takes as inputs (``source: program:<name>``)."""
    from edgeir.runtime.feeds import source_program

    return [name for spec in program["inputs"] if (name := source_program(spec))]


class _EtCall:
    def __init__(self, path: Path) -> None:
        from executorch.runtime import Runtime

        self.method = Runtime.get().load_program(path).load_method("forward")

    def __call__(self, inputs: list[np.ndarray]):
        return self.method.execute([torch.from_numpy(x) for x in inputs])


def export_or_reuse(method: str, target: str, quant: str, args, out: Path, size: int):
    """The edgeir bundle for one contender, reused when ``out`` holds one."""
    import edgeir
    from edgeir.bundle import MANIFEST, Bundle

    found = sorted(out.glob(f"*/{MANIFEST}")) if out.is_dir() else []
    if found and not args.fresh:
        return Bundle.open(found[0].parent), False
    if args.reuse_only:
        return None, False
    bundle = edgeir.export(method, target, variant=args.variant, quant=quant, output=str(out),
                           input_size=(size, size), weights=args.weights)
    return bundle, True


def _label_seconds(stages: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if v >= 0.05)


def bench_method(method: str, args, out: Path, threads: int) -> dict:
    """Export (or reuse) every contender of ``method``, then time them interleaved; one result row."""
    from executorch.extension.pybindings import _portable_lib

    from edgeir.discovery import methods, targets
    from edgeir.evaluation.macs import count_macs
    from edgeir.pipeline.export import apply_rewrites  # noqa: F401  (the eager model is the recipe's, unrewritten)
    from edgeir.recipe import RecipeOptions
    from edgeir.target import require
    from edgeir.weights.build import build_model_with_weights

    size = 128 if method in args.small else args.size
    spec = methods().get(method)
    model, _ = build_model_with_weights(method, args.variant, None, args.weights)
    recipe = spec.recipe(model, RecipeOptions(variant=args.variant, task=spec.default_task, input_size=(size, size)))
    program = recipe.programs[0]
    example = program.example_inputs()
    row: dict = {"method": method, "variant": args.variant, "size": size, "program": program.name,
                 "contenders": {}}
    with torch.no_grad():
        row["macs"] = int(count_macs(program.module.eval(), *example))
    calls = {"eager": lambda inputs: program.module(*[torch.from_numpy(x) for x in inputs])}
    inputs = [x.numpy() for x in example]
    mdir = out / method
    for label, target, quant in EDGEIR_CONTENDERS:
        if label not in args.contenders:
            continue
        try:
            bundle, fresh = export_or_reuse(method, target, quant, args, mdir / label.replace(" ", "-"), size)
            if bundle is None:
                continue  # --reuse-only, and none exported
        except Exception as exc:  # one failing contender must not hide the others' figures
            row["contenders"][label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"# {method} {label}: export failed: {exc}", flush=True)
            continue
        details = bundle.manifest["target_details"]
        entry = {"stage_seconds": bundle.manifest.get("stage_seconds", {}), "fresh_export": fresh,
                 "export_seconds": details.get("export_seconds", {})}
        name = program.name
        runner = _OrtRunner(bundle, threads) if target == "onnx" else require(targets().get(target).runtime(bundle))
        if name in [p["name"] for p in bundle.programs]:
            calls[label] = functools.partial(runner.run, name)
            timed = [name]
        else:
            # DiffIR's int8 bundles hold only the staged pair (prior, restore): a photo goes through both.
            staged = staged_photo_program(bundle)
            if staged is None:
                row["contenders"][label] = {"error": f"the bundle has no '{name}' program and no staged one"}
                continue
            calls[label] = functools.partial(_run_staged, runner, staged, bundle.programs)
            timed = [*source_programs(staged), staged["name"]]
        entry["programs"] = timed
        delegation = [d for n, d in (details.get("delegation") or {}).items() if n in timed]
        if delegation:
            entry["delegation"] = combined_delegation(delegation)
        entry["inputs"] = [list(x.shape) for x in inputs_of(bundle.program(timed[-1]))]
        row["contenders"][label] = entry
        print(f"# {method} {label}: {_label_seconds(entry['stage_seconds'])}", flush=True)
    stock_dir = mdir / "stock"
    stock_dir.mkdir(parents=True, exist_ok=True)
    stock = (("stock et fp32", "stock.pte", "stock_et.json", stock_executorch, _EtCall),
             ("stock ort fp32", "stock.onnx", "stock_ort.json", stock_onnx, lambda path: _OrtCall(path, threads)))
    for label, artifact, record, export_stock, make_call in stock:
        path, meta = stock_dir / artifact, stock_dir / record
        if label not in args.contenders or (args.reuse_only and not meta.is_file()):
            continue
        try:
            if path.is_file() and meta.is_file() and not args.fresh:
                info = json.loads(meta.read_text())
            else:
                info = export_stock(program.module, example, path)
                meta.write_text(json.dumps(info))
            row["contenders"][label] = info
            calls[label] = make_call(path)
            print(f"# {method} {label}: {_label_seconds(info['seconds'])}", flush=True)
        except Exception as exc:  # the stock exporters cannot take every model (AnyIR's complex FFT)
            row["contenders"][label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"# {method} {label}: export failed: {str(exc)[:200]}", flush=True)

    if args.export_only:
        return row
    _portable_lib._unsafe_reset_threadpool(threads)
    torch.set_num_threads(threads)
    with torch.no_grad():
        for _ in range(args.warmup):
            for call in calls.values():
                call(inputs)
        samples = {label: [] for label in calls}
        for _ in range(args.runs):
            for label, call in calls.items():
                start = time.perf_counter()
                call(inputs)
                samples[label].append((time.perf_counter() - start) * 1000)
    for label, values in samples.items():
        entry = row["contenders"].setdefault(label, {})
        entry["p50_ms"] = round(statistics.median(values), 2)
        entry["min_ms"] = round(min(values), 2)
        entry["gflops"] = round(2 * row["macs"] / (entry["p50_ms"] / 1000) / 1e9, 2)
    return row


def _ratio(row: dict, a: str, b: str) -> str:
    ca, cb = row["contenders"].get(a, {}), row["contenders"].get(b, {})
    if "p50_ms" not in ca or "p50_ms" not in cb:
        return "-"
    return f"{ca['p50_ms'] / cb['p50_ms']:.2f}"


def markdown(rows: list[dict], host: dict) -> str:
    """The latency table, the ratio table and the delegation/export table."""
    labels = ["eager", *(c[0] for c in EDGEIR_CONTENDERS), *STOCK_CONTENDERS]
    flags = ", ".join(f for f, on in host["isa"].items() if on) or "none of " + ", ".join(ISA_FLAGS)
    lines = [f"Host: {host['cpu']}, {host['threads']} threads; ISA: {flags}; same-run sgemm 2048^2: "
             f"{host['sgemm_gflops']:.0f} GFLOP/s. Median ms (GFLOP/s = 2 x MACs / latency).", "",
             "| method | size | GMACs | " + " | ".join(labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for row in rows:
        cells = []
        for label in labels:
            c = row["contenders"].get(label, {})
            cells.append(f"{c['p50_ms']:.1f} ({c['gflops']:.0f})" if "p50_ms" in c else ("failed" if "error" in c
                                                                                         else "-"))
        lines.append(f"| {row['method']} | {row['size']} | {row['macs'] / 1e9:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "| method | et fp32 / ort fp32 | et fp32 / stock et | ort fp32 / stock ort | et int8 / et fp32 | "
                  "ort int8 / ort fp32 |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['method']} | {_ratio(row, 'et fp32', 'ort fp32')} | "
                     f"{_ratio(row, 'et fp32', 'stock et fp32')} | {_ratio(row, 'ort fp32', 'stock ort fp32')} | "
                     f"{_ratio(row, 'et int8', 'et fp32')} | {_ratio(row, 'ort int8', 'ort fp32')} |")
    lines += ["", "| method | artifact | subgraphs | nodes outside | % MACs delegated | export seconds |",
              "|---|---|---|---|---|---|"]
    for row in rows:
        for label in ("et fp32", "et int8", "stock et fp32"):
            c = row["contenders"].get(label, {})
            d = c.get("delegation")
            if not d:
                continue
            macs_in = 100.0 * (1 - d.get("non_delegated_macs", 0) / row["macs"]) if row["macs"] else 0.0
            stages = c.get("export_seconds") or c.get("seconds") or {}
            outside = f"{d['non_delegated_nodes']} {d['non_delegated_ops'] or ''}".strip()
            lines.append(f"| {row['method']} | {label} | {d['delegate_subgraphs']} | {outside} | {macs_in:.1f} | "
                         f"{_label_seconds(stages)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from edgeir.discovery import methods

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--small", nargs="*", default=["flexir", "hiir"], help="methods measured at 128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--contenders", nargs="*",
                        default=[c[0] for c in EDGEIR_CONTENDERS] + list(STOCK_CONTENDERS))
    parser.add_argument("--weights", default=None, help="one method's checkpoint (with one --methods name)")
    parser.add_argument("--fresh", action="store_true", help="export again instead of reusing bundles under -o")
    parser.add_argument("--reuse-only", action="store_true",
                        help="time only the contenders already exported under -o; export nothing")
    parser.add_argument("--export-only", action="store_true",
                        help="export the contenders under -o and stop; a later run times them on a quiet host")
    parser.add_argument("-o", "--output", default="bench-out/performance")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("nncf").setLevel(logging.WARNING)  # one INFO line per operator it leaves float
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    names = args.methods or list(methods().registry.names())
    import platform

    host = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "isa": isa_flags(),
            "sgemm_gflops": sgemm_gflops()}
    try:
        host["cpu"] = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                           if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# host {host}", flush=True)
    rows = []
    results = out / "performance.json"
    for name in names:
        rows.append(bench_method(name, args, out, args.threads))
        results.write_text(json.dumps({"host": host, "rows": rows}, indent=1))
        print(markdown(rows[-1:], host), flush=True)
    host["sgemm_gflops_after"] = sgemm_gflops()
    results.write_text(json.dumps({"host": host, "rows": rows}, indent=1))
    print(markdown(rows, host))
    print(f"# sgemm after the run: {host['sgemm_gflops_after']:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
