"""The plugin conformance checks: plain functions, each checking one property of one named method.

Every check takes the method's entry-point name, returns one line saying what held, and raises
``AssertionError`` or an :class:`~edgeir.errors.EdgeirError` whose message names the problem. A
check that cannot run on this host (a target whose runtime needs another OS) raises :class:`NotRun`
with the target's reason; that is not a failure. The checks only use what a third-party plugin
uses: discovery, the public export and verify functions and the plugin's own ``SPEC``; targets are
discovered, never named.

:func:`plan` lists the checks for a method in order and :func:`run_check` runs one into an
:class:`Outcome`; ``edgeir check-plugin`` and the pytest front-end (``test_plugin.py``, its options in
``conftest.py``) are two thin drivers over them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeir.discovery import methods, quant_schemes, targets
from edgeir.errors import CheckFailed, EdgeirError, PluginLoadError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeir.bundle import Bundle
    from edgeir.method import MethodSpec

#: Relative tolerance of a counted parameter count against ``Variant.declared_params`` (as the project's schema test).
PARAMS_TOLERANCE = 0.001
#: The variant the eager, checkpoint and export checks use: every method must have it, and it is small.
VARIANT = "tiny"
#: Built-in photos ``verify`` runs by default in the kit (fast, and still two different images).
DEFAULT_PHOTOS = 2

PASSED, FAILED, NOT_RUN = "passed", "failed", "not-run"


class NotRun(Exception):  # noqa: N818 - an outcome, not an error
    """The check cannot run on this host; the message says why (e.g. the target's runtime needs macOS)."""


@dataclass(frozen=True)
class Outcome:
    """The result of one check: ``status`` is :data:`PASSED`, :data:`FAILED` or :data:`NOT_RUN`."""

    check: str
    status: str
    detail: str
    seconds: float
    error: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Check:
    """One named check, ready to run: ``run()`` returns the detail line or raises."""

    name: str
    run: Callable[[], str] = field(compare=False, repr=False)


def spec_of(method: str) -> MethodSpec:
    """The method's spec through discovery, as every edgeir command loads it.

    Raises:
        PluginLoadError: if the plugin is installed but failed to load (the message says why, e.g. an
            entry-point name that differs from ``SPEC.name``).
        UnknownNameError: if no plugin has that name (the message lists the valid ones).
    """
    return methods().get(method)


# --------------------------------------------------------------------------------------------- the method
def check_spec(method: str) -> str:
    """The spec loads through discovery, its entry-point name equals ``SPEC.name``, and it declares
    ``paper`` and ``tiny`` variants, a default task among its tasks, a summary, a paper and callable hooks."""
    discovered = methods()
    if method in discovered.failures:
        raise PluginLoadError(f"method plugin {discovered.failures[method].describe()}")
    spec = discovered.get(method)
    assert spec.name == method, f"entry point '{method}' loads a spec called '{spec.name}' (they must be equal)"
    assert method == method.lower(), f"method name '{method}' must be lower case"
    missing = [v for v in ("paper", "tiny") if v not in spec.variant_names]
    assert not missing, f"method '{method}' lacks the required variant(s) {missing}; it has {list(spec.variant_names)}"
    assert spec.default_task in spec.tasks, f"default task '{spec.default_task}' is not among {list(spec.tasks)}"
    assert spec.summary.strip() and spec.paper.strip(), f"method '{method}' needs a non-empty summary and paper"
    for hook in ("build", "recipe", "io", "convert_checkpoint"):
        assert callable(getattr(spec, hook)), f"SPEC.{hook} of '{method}' is not callable"
    return (f"{discovered.registry.source(method)}; variants {', '.join(spec.variant_names)}; "
            f"tasks {', '.join(spec.tasks)}")


def count_parameters(spec: MethodSpec, variant: str, task: str) -> tuple[int, str]:
    """``(unique parameters, device)`` of a built variant; built on the meta device (no memory, no
    initialisation) where the model allows it, else on the CPU."""
    import torch

    try:
        with torch.device("meta"):
            model = spec.build(variant, task)
        device = "meta"
    except Exception:  # a model that computes something at construction: build it for real
        with torch.random.fork_rng(devices=[]):
            model = spec.build(variant, task)
        device = "cpu"
    return sum(p.numel() for p in model.parameters()), device


def check_declared_params(method: str) -> str:
    """Every variant that sets ``declared_params`` builds (for the default task) that many parameters,
    within :data:`PARAMS_TOLERANCE`."""
    spec = spec_of(method)
    counted, wrong = [], []
    for variant in spec.variants:
        if variant.declared_params is None:
            continue
        count, device = count_parameters(spec, variant.name, spec.default_task)
        counted.append(f"{variant.name} {count:,} ({device})")
        if abs(count - variant.declared_params) > PARAMS_TOLERANCE * variant.declared_params:
            wrong.append(f"variant '{variant.name}' declares {variant.declared_params:,} parameters but builds "
                         f"{count:,} for task '{spec.default_task}'")
    assert not wrong, "; ".join(wrong)
    if not counted:
        raise NotRun(f"no variant of '{method}' sets declared_params (the paper's figure belongs on 'paper')")
    return "; ".join(counted)


def _tiny_model(spec: MethodSpec, task: str, seed: int) -> nn.Module:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build_model(VARIANT, task).eval()


def _contract_input(io: Any, size: int, seed: int = 0) -> torch.Tensor:
    import torch

    low, high = io.value_range
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, io.in_channels, size, size + io.size_multiple, generator=generator) * (high - low) + low


def check_io_contract(method: str, tasks: Sequence[str] | None = None) -> str:
    """For every task (or ``tasks``), the ``tiny`` model's eager forward honours ``io(tiny, task)``: channels,
    scale, finite values, and a ``ValueError`` for an input whose H or W is not a multiple of ``size_multiple``."""
    spec = spec_of(method)
    by_result: dict[str, list[str]] = {}
    for task in tasks or spec.tasks:
        try:
            result = _io_contract_holds(spec, spec.check_task(task))
        except AssertionError as exc:
            raise AssertionError(f"task '{task}': {exc}") from exc
        by_result.setdefault(result, []).append(task)
    return "; ".join(f"{', '.join(names)}: {result}" for result, names in by_result.items())


def _io_contract_holds(spec: MethodSpec, task: str) -> str:
    import torch

    from edgeir.method import IOContract

    io = spec.io(VARIANT, task)
    assert isinstance(io, IOContract), f"io('{VARIANT}', '{task}') returned a {type(io).__name__}, not an IOContract"
    model = _tiny_model(spec, task, seed=0)
    multiple = io.size_multiple
    x = _contract_input(io, 8 * multiple)
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor), f"the model's forward returned a {type(y).__name__}, not the restored image"
    expected = (1, io.out_channels, x.shape[-2] * io.scale, x.shape[-1] * io.scale)
    assert tuple(y.shape) == expected, (
        f"for an input of shape {tuple(x.shape)} the contract (out_channels={io.out_channels}, scale={io.scale}) "
        f"says {expected}, the model returned {tuple(y.shape)}")
    assert torch.isfinite(y).all(), "the tiny model's output has NaN or infinite values"
    if multiple == 1:
        return f"{tuple(x.shape)} -> {tuple(y.shape)}"
    bad = torch.rand(1, io.in_channels, 8 * multiple + 1, 8 * multiple)
    try:
        with torch.no_grad():
            model(bad)
    except ValueError:
        return f"{tuple(x.shape)} -> {tuple(y.shape)}, {bad.shape[-2]}x{bad.shape[-1]} refused (multiple {multiple})"
    raise AssertionError(f"io declares size_multiple={multiple} but the model accepted a {bad.shape[-2]}x"
                         f"{bad.shape[-1]} input; it must raise ValueError naming the multiple")


def check_checkpoint_round_trip(method: str) -> str:
    """The ``tiny`` state dict saved as safetensors and as a ``torch.save`` file loads back through
    edgeir's own loading (what ``export --weights`` does: ``convert_checkpoint``, then a strict load) into
    a model that gives identical outputs."""
    import torch
    from safetensors.torch import save_file

    from edgeir.weights.build import build_model_with_weights
    from edgeir.weights.checkpoint import state_dict_sha256

    spec = spec_of(method)
    task = spec.default_task
    original = _tiny_model(spec, task, seed=1)  # another seed than the loader's init: loading must change it
    state = {name: tensor.detach().clone().contiguous() for name, tensor in original.state_dict().items()}
    x = _contract_input(spec.io(VARIANT, task), 8 * spec.io(VARIANT, task).size_multiple, seed=2)
    with torch.no_grad():
        expected = original(x)
    loaded_formats = []
    with tempfile.TemporaryDirectory(prefix="edgeir-kit-ckpt-") as tmp:
        files = {"safetensors": Path(tmp) / f"{method}-tiny.safetensors", "torch.save": Path(tmp) / f"{method}-tiny.pt"}
        save_file(state, str(files["safetensors"]))
        torch.save(state, files["torch.save"])
        for label, path in files.items():
            model, info = build_model_with_weights(method, VARIANT, task, weights=path, seed=0)
            assert info.state_sha256 == state_dict_sha256(original), (
                f"the {label} checkpoint loaded into a state dict that differs from the one saved")
            with torch.no_grad():
                got = model(x)
            if not torch.equal(got, expected):
                diff = (got - expected).abs().max().item() if got.shape == expected.shape else "shape differs"
                raise AssertionError(f"after a {label} round trip the model's output differs (max abs diff {diff})")
            loaded_formats.append(label)
    return f"{len(state)} tensors through {' and '.join(loaded_formats)}: identical outputs"


# --------------------------------------------------------------------------------------------- the targets
@dataclass
class Exports:
    """The ``tiny`` bundles of one method, exported once per target into ``root`` and shared by the checks."""

    method: str
    root: Path
    _bundles: dict[str, Bundle | BaseException] = field(default_factory=dict)
    _eager: dict[str, Any] | None = None

    def bundle(self, target: str) -> Bundle:
        """The method's ``tiny`` bundle for ``target`` (random weights: the machinery, not a shipped model).

        Raises:
            NotRun: if the target cannot export on this host (its availability says why).
        """
        if target not in self._bundles:
            import edgeir

            availability = targets().get(target).availability()
            if not availability.ok:
                self._bundles[target] = NotRun(f"target '{target}' cannot export on this host: {availability.reason}")
                raise self._bundles[target]
            try:
                self._bundles[target] = edgeir.export(self.method, target, variant=VARIANT, output=self.root,
                                                      weights="random")
            except Exception as exc:
                self._bundles[target] = exc
                raise
        result = self._bundles[target]
        if isinstance(result, NotRun):
            raise NotRun(str(result))
        if isinstance(result, BaseException):
            raise AssertionError(f"not checked: the export to {target} failed ({result})") from result
        return result

    def eager_programs(self) -> dict[str, Any]:
        """The eager recipe's programs (``tiny``, default task, random weights) as their input and output
        shapes, after the export pipeline's own recipe check (tile and declared I/O vs what the modules return)."""
        if self._eager is None:
            import torch

            from edgeir.pipeline.recipe_check import check_recipe
            from edgeir.recipe import RecipeOptions
            from edgeir.weights.build import build_model_with_weights

            spec = spec_of(self.method)
            model, _ = build_model_with_weights(self.method, VARIANT, spec.default_task, weights="random")
            recipe = spec.recipe(model, RecipeOptions(variant=VARIANT, task=spec.default_task))
            check_recipe(self.method, recipe)
            eager = {}
            for program in recipe.programs:
                inputs = program.example_inputs()
                with torch.no_grad():
                    outputs = program.module.eval()(*inputs)
                outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
                eager[program.name] = {"inputs": [list(t.shape) for t in inputs],
                                       "outputs": [list(t.shape) for t in outputs]}
            self._eager = eager
        return self._eager


def check_export(exports: Exports, target: str) -> str:
    """Export ``tiny`` to ``target``: the bundle is intact, records random weights, and its export-time check
    passed at the precision's threshold (or says why the artifact cannot run here)."""
    bundle = exports.bundle(target)
    manifest = bundle.manifest
    bad = bundle.check_integrity()
    assert not bad, f"bundle {bundle.path.name}: files differ from their manifest digests: {bad}"
    assert manifest["weights"]["source"] == "random-init", f"weights source is {manifest['weights']['source']!r}"
    check = manifest.get("export_check", {})
    files = f"{len(manifest['files'])} file(s)"
    if check.get("status") == NOT_RUN:
        assert check.get("reason"), "the export check was not run and gives no reason"
        return f"{bundle.path.name} ({files}); not run at export: {check['reason']}"
    assert check.get("status") == PASSED, f"export check status is {check.get('status')!r}"
    threshold = quant_schemes().get(manifest["quant"]).verify_threshold_db
    worst = min(p["psnr_db"] for p in check["programs"].values())
    assert worst >= threshold, f"artifact vs eager model {worst:.1f} dB < {threshold:.0f} dB on the example input"
    return f"{bundle.path.name} ({files}): {worst:.1f} dB vs eager on its example input in {check['runtime']}"


def check_verify(exports: Exports, target: str, photos: int = DEFAULT_PHOTOS) -> str:
    """``edgeir verify`` on the bundle, with ``photos`` built-in photos: every program that runs on photos
    passes its precision's threshold on each of them. Not run where the target cannot run it here."""
    from edgeir.runtime.verify import verify

    bundle = exports.bundle(target)
    report = verify(bundle.path, photos=photos, strict=False)
    if report.status == NOT_RUN:
        raise NotRun(report.reason or "the target gives no reason")
    data = report.data
    threshold = data["threshold_db"]
    lines, failed = [], []
    for name, result in data["programs"].items():
        if result["status"] == NOT_RUN:
            lines.append(f"{name} not run ({result['reason']})")
            continue
        if result["status"] != PASSED:
            failed.append(f"program '{name}' min {result['min_psnr_db']:.1f} dB < {threshold:.0f} dB")
            continue
        assert len(result["photos"]) == photos, f"program '{name}' ran on {len(result['photos'])} photos, not {photos}"
        lines.append(f"{name} min {result['min_psnr_db']:.1f} dB")
    if failed or report.status != PASSED:
        raise CheckFailed(f"verify {report.status}: {'; '.join(failed) or 'see verify.json'}")
    return f"{data['artifact_runtime']}, {photos} photos, threshold {threshold:.0f} dB: {'; '.join(lines)}"


def check_recipe_io(exports: Exports, target: str) -> str:
    """The I/O the manifest tells apps (the recipe's programs) equals what the eager programs take and return,
    and, where the target reports them, the artifact's own inputs and outputs (or its entry points)."""
    manifest_programs = {p["name"]: p for p in exports.bundle(target).programs}
    eager = exports.eager_programs()
    assert set(manifest_programs) == set(eager), (
        f"manifest programs {sorted(manifest_programs)} != eager recipe programs {sorted(eager)}")
    for name, shapes in eager.items():
        for side in ("inputs", "outputs"):
            declared = [spec["shape"] for spec in manifest_programs[name][side]]
            assert declared == shapes[side], (
                f"program '{name}': the manifest's {side} have shapes {declared}, the eager program's {shapes[side]}")
    structure = targets().get(target).inspect(exports.bundle(target))
    compared = ""
    if len(manifest_programs) == 1 and isinstance(structure.get("inputs"), dict):
        (program,) = manifest_programs.values()
        for side in ("inputs", "outputs"):
            declared = {spec["name"]: list(spec["shape"]) for spec in program[side]}
            actual = {str(k): list(v) for k, v in structure[side].items()}
            assert declared == actual, f"the artifact's {side} are {actual}, the manifest says {declared}"
        compared = "; the artifact declares the same inputs and outputs"
    if isinstance(structure.get("methods"), list):  # a multi-entry artifact lists its programs (ExecuTorch)
        assert set(structure["methods"]) == set(manifest_programs), (
            f"the artifact's methods are {sorted(structure['methods'])}, the manifest's programs "
            f"{sorted(manifest_programs)}")
        compared = "; the artifact has a method per program"
    summary = "; ".join(f"{n}: {s['inputs']} -> {s['outputs']}" for n, s in eager.items())
    return summary + compared


# --------------------------------------------------------------------------------------------- the plan
def target_names(selected: Sequence[str] | None = None) -> list[str]:
    """The registered targets, or ``selected`` after checking each is registered.

    Raises:
        UnknownNameError: for a name that is not a registered target (listing the valid ones).
    """
    if not selected:
        return targets().registry.names()
    for name in selected:
        targets().get(name)
    return list(dict.fromkeys(selected))


def plan(method: str, root: str | Path, target_list: Sequence[str] | None = None,
         photos: int = DEFAULT_PHOTOS) -> list[Check]:
    """The checks of ``method`` in the order they should run; exports go under ``root``.

    Args:
        method: The method's entry-point name.
        root: An existing directory for the bundles (the caller removes it).
        target_list: Targets to export to (default: every registered target).
        photos: Built-in photos ``verify`` uses.
    """
    exports = Exports(method, Path(root))
    exports.root.mkdir(parents=True, exist_ok=True)
    checks = [
        Check("spec", lambda: check_spec(method)),
        Check("declared-params", lambda: check_declared_params(method)),
        Check("io-contract", lambda: check_io_contract(method)),
        Check("checkpoint", lambda: check_checkpoint_round_trip(method)),
    ]
    for target in target_names(target_list):
        checks += [
            Check(f"export[{target}]", lambda t=target: check_export(exports, t)),
            Check(f"verify[{target}]", lambda t=target: check_verify(exports, t, photos)),
            Check(f"recipe-io[{target}]", lambda t=target: check_recipe_io(exports, t)),
        ]
    return checks


def run_check(check: Check) -> Outcome:
    """Run one check, turning its exception into a failed (or not-run) :class:`Outcome`."""
    start = time.perf_counter()
    try:
        detail = check.run()
        status, error = PASSED, None
    except NotRun as exc:
        detail, status, error = str(exc), NOT_RUN, None
    except (AssertionError, EdgeirError) as exc:
        detail, status, error = str(exc) or type(exc).__name__, FAILED, exc
    except Exception as exc:  # a plugin's own bug: report it as the check's failure, with its type
        detail, status, error = f"{type(exc).__name__}: {exc}", FAILED, exc
    return Outcome(check.name, status, detail, time.perf_counter() - start, error)


def workdir(prefix: str = "edgeir-check-plugin-") -> Path:
    """A fresh temporary directory for a run's bundles; remove it with :func:`remove_workdir`."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_workdir(path: Path) -> None:
    """Remove a run's bundles."""
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "DEFAULT_PHOTOS", "FAILED", "NOT_RUN", "PASSED", "PARAMS_TOLERANCE", "VARIANT", "Check", "Exports", "NotRun",
    "Outcome", "check_checkpoint_round_trip", "check_declared_params", "check_export", "check_io_contract",
    "check_recipe_io", "check_spec", "check_verify", "count_parameters", "plan", "remove_workdir", "run_check",
    "spec_of", "target_names", "workdir",
]
