"""The target contract: an export format with its optional host runtime.

Heavy SDKs are imported inside methods, never at module import, so listing targets stays fast
and a missing SDK is a value (:class:`Availability`), not an ImportError at start-up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from edgeir.bundle import Bundle
    from edgeir.recipe import ExportRecipe


R = TypeVar("R")


@dataclass(frozen=True)
class Availability:
    """Whether something can be used on this host, and if not, why.

    A target answers a request for a runner with a runner, or with an ``Availability(False, reason)``:
    one value that says it cannot, and why (never None plus a separate question).
    """

    ok: bool
    reason: str = ""


def unavailable(answer: object) -> Availability | None:
    """The :class:`Availability` a target answered instead of a runner, or None when it gave a runner."""
    return answer if isinstance(answer, Availability) else None


def require(answer: R | Availability, what: str = "cannot run the artifact on this host") -> R:
    """The runner a target answered with.

    Raises:
        UsageError: ``what: <the target's reason>`` when the target answered that it cannot.
    """
    if isinstance(answer, Availability):
        from edgeir.errors import UsageError

        raise UsageError(f"{what}: {answer.reason}")
    return answer


@dataclass(frozen=True)
class ExportOptions:
    """Options a target resolves before exporting.

    Args:
        backend: Target backend (``xnnpack``, ``portable``...).
        quant: Quantization / precision scheme name.
    """

    backend: str
    quant: str


@dataclass
class ExportResult:
    """What a target wrote: artifact files (relative to the bundle) and facts for the manifest.

    Attributes:
        files: Artifact files, relative to the bundle directory.
        delegation: Per program, how much of the graph a delegate took (targets with delegates):
            ``delegate_subgraphs``, ``delegated_nodes``, ``non_delegated_nodes``, ``coverage`` and the operators
            left outside.
        dynamic_hw: Programs whose artifact accepts any H/W (a multiple of the method's size multiple).
        details: Everything else the target wants recorded (toolchain facts, compression, timings).
    """

    files: list[str]
    delegation: dict[str, dict[str, Any]] = field(default_factory=dict)
    dynamic_hw: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``target_details``: the typed facts beside the target's own."""
        typed = {"delegation": self.delegation} if self.delegation else {}
        if self.dynamic_hw:
            typed["dynamic_hw"] = self.dynamic_hw
        return {**self.details, **typed}


@dataclass(frozen=True)
class ReferenceWeights:
    """The weights an artifact computes with where they are not the exported model's (compressed weights,
    decompressed), keyed like the converted program module's parameters and buffers, with facts for
    ``verify.json``."""

    tensors: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)


class Runner(ABC):
    """Runs the programs of an exported artifact on this host."""

    runtime: str = ""
    # What a reader of the figures must know about this runtime (an interpreter, not the device's kernels).
    note: str = ""

    def say_slow_once(self) -> None:  # noqa: B027  (optional hook: most runtimes have nothing to say)
        """Tell the user once (stderr) that this runtime is slow, where it is (an interpreter); default silent."""
        return None

    @abstractmethod
    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run ``program`` on float32 arrays and return its outputs as float32 arrays."""


class ProfileRunner(Runner):
    """A runner set up for timing: one thread count applied where the runtime allows it.

    Attributes:
        threads: Threads the runtime uses (as requested, or as the runtime reports it).
        notes: What a reader must know (a thread setting the runtime does not honour...).
    """

    threads: int = 0
    notes: tuple[str, ...] = ()

    def version(self) -> str:
        """Version of the runtime."""
        return package_version(self.runtime)

    def trace_ops(self, program: str, inputs: Sequence[np.ndarray], runs: int, workdir: Path) -> list[dict[str, Any]]:
        """Run ``program`` ``runs`` times with the runtime's profiler on; per-operator rows (see ``opprofile``).

        Profiled runs are slower than plain ones, so they are never among the latency samples. The
        default returns no rows (the runtime has no profiler).
        """
        return []


class Target(ABC):
    """An export format. Subclasses set the class attributes and implement the methods.

    Attributes:
        name: Target name used in flags and bundle names.
        summary: One line for ``edgeir list``.
        backends: Backends the target offers; the first is the default.
        quant_schemes: Schemes it can export; ``default_quant`` is used when none is asked for.
        dynamic_shapes: Whether programs may keep dynamic H/W.
    """

    name: str = ""
    summary: str = ""
    backends: tuple[str, ...] = ("default",)
    quant_schemes: tuple[str, ...] = ("fp32",)
    default_quant: str = "fp32"
    dynamic_shapes: bool = False
    runtimes: tuple[str, ...] = ()  # runtimes ``runtime_named`` offers besides the default

    @property
    def default_backend(self) -> str:
        """The backend used when none is asked for."""
        return self.backends[0]

    def availability(self) -> Availability:
        """Whether this host can export to the target (its SDK is installed)."""
        return Availability(True)

    @abstractmethod
    def export(self, recipe: ExportRecipe, options: ExportOptions, out_dir: Path) -> ExportResult:
        """Write the artifact for ``recipe`` into ``out_dir`` (an empty, private directory)."""

    @abstractmethod
    def runtime(self, bundle: Bundle) -> Runner | Availability:
        """A runner for the bundle's artifact, or ``Availability(False, why)`` where this host cannot run it."""

    def runtime_named(self, bundle: Bundle, name: str) -> Runner | Availability:
        """The runner of runtime ``name`` (one of :attr:`runtimes`), or ``Availability(False, why)``.

        Raises:
            UsageError: if the target has no runtime of that name.
        """
        from edgeir.errors import UsageError

        raise UsageError(f"target {self.name} offers no runtime '{name}'"
                         + (f" (it offers: {', '.join(self.runtimes)})" if self.runtimes else ""))

    def locate_divergence(self, bundle: Bundle, program: str, module: Any, inputs: Sequence[np.ndarray],
                          threshold_db: float) -> dict[str, Any] | None:
        """Where a failing artifact departs from the eager ``module`` on ``inputs``: the first operation whose
        output is below ``threshold_db`` against the eager intermediate. None where the target cannot tell."""
        return None

    def reference_weights(self, bundle: Bundle, program: str, state: Mapping[str, Any]) -> ReferenceWeights | None:
        """The weights the artifact of ``program`` holds, for a scheme that compresses them: each compressed
        tensor decompressed and keyed like ``state`` (the parameters and buffers, non-persistent ones included,
        of the program module that was converted: the eager one after the export's rewrites), so ``verify`` can
        rebuild that module with the artifact's own weights. None (the default) where the artifact stores the
        weights as exported.

        Raises:
            CheckFailed: if a stored weight maps to no tensor of ``state``, or is not a compression of it.
        """
        return None

    def profile_runner(self, bundle: Bundle, threads: int) -> ProfileRunner | Availability:
        """A runner for timing the artifact with ``threads`` threads (0: the runtime's default), or
        ``Availability(False, why)`` where this host cannot time it."""
        return Availability(False, f"target {self.name} has no runtime to time on this host")

    def quant_engine(self, options: ExportOptions):
        """The :class:`~edgeir.quantization.scheme.QuantEngine` that serves ``options.quant``; None for float schemes
        the target exports natively.

        Raises:
            UsageError: when the scheme needs a backend other than ``options.backend``.
        """
        return None

    def inspect(self, bundle: Bundle) -> dict[str, Any]:
        """Structural facts about an artifact, checked without running it (I/O, op counts)."""
        return {}

    def toolchain_versions(self) -> dict[str, str]:
        """Versions of the packages the target exports and runs with."""
        return {}


def package_version(name: str) -> str:
    """Installed version of distribution ``name`` without importing it ('not installed' if absent)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
