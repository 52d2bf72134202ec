"""Plugin discovery through entry points: find -> load -> validate.

Built-in methods, targets and quantization schemes are found exactly like third-party ones: each
entry point names one spec object. A plugin that fails to load is reported by name, distribution
and error; it never breaks the others.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Generic, TypeVar

from edgeir.errors import PluginLoadError  # noqa: F401 - raised by Discovered.get
from edgeir.registry import Registry

T = TypeVar("T")

METHODS_GROUP = "edgeir.plugins"
TARGETS_GROUP = "edgeir.targets"
QUANT_GROUP = "edgeir.quant"


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be used, and why."""

    name: str
    value: str
    distribution: str
    error: str

    def describe(self) -> str:
        """One line for users: which plugin, from where, what went wrong."""
        return f"{self.name} ({self.value}, from {self.distribution}): {self.error}"


@dataclass
class Discovered(Generic[T]):
    """The loaded registry of one group and the plugins of that group that failed."""

    registry: Registry[T]
    failures: dict[str, LoadFailure] = field(default_factory=dict)

    def get(self, name: str) -> T:
        """The object named ``name``.

        Raises:
            PluginLoadError: if that plugin exists but failed to load.
            UnknownNameError: if no plugin has that name.
        """
        if name in self.failures:
            raise PluginLoadError(f"plugin {self.failures[name].describe()}")
        return self.registry.get(name)


def distribution_of(entry_point: metadata.EntryPoint) -> str:
    """Name of the distribution that declares ``entry_point`` ('unknown' for hand-built ones)."""
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else "unknown distribution"


def load_group(
    group: str,
    expected_type: type[T],
    kind: str,
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> Discovered[T]:
    """Load every entry point of ``group`` into a strict registry.

    Args:
        group: Entry-point group, e.g. ``edgeir.plugins``.
        expected_type: Class every loaded object must be an instance of.
        kind: Word for messages ("method", "target").
        entry_points: The entry points to load; by default those installed.

    A name claimed by two (or more) different entry points identifies neither: every claimant is
    disabled and recorded as a failure naming all of their sources, without being imported; every
    other name keeps working (a name identifies results, so it is never silently given to one).

    Returns:
        The registry of valid objects and the failures by entry-point name.
    """
    if entry_points is None:
        entry_points = metadata.entry_points(group=group)
    discovered: Discovered[T] = Discovered(Registry(kind))
    claims: dict[str, list[metadata.EntryPoint]] = {}
    for ep in entry_points:
        same = [o for o in claims.get(ep.name, []) if (o.value, distribution_of(o)) == (ep.value, distribution_of(ep))]
        if not same:  # one distribution seen twice on sys.path is one claim
            claims.setdefault(ep.name, []).append(ep)
    for name, eps in claims.items():
        if len(eps) > 1:
            sources = " and ".join(f"'{ep.value}' from {distribution_of(ep)}" for ep in eps)
            discovered.failures[name] = LoadFailure(
                name, " | ".join(ep.value for ep in eps), " and ".join(distribution_of(ep) for ep in eps),
                f"{kind} '{name}' is declared {len(eps)} times: by {sources}; all of them are disabled until "
                "one is uninstalled")
    for ep in (eps[0] for eps in claims.values() if len(eps) == 1):
        source = f"'{ep.value}' from {distribution_of(ep)}"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the others
            discovered.failures[ep.name] = LoadFailure(
                ep.name, ep.value, distribution_of(ep), f"{type(exc).__name__}: {exc}"
            )
            continue
        problem = _validate(obj, ep.name, expected_type, kind)
        if problem:
            discovered.failures[ep.name] = LoadFailure(ep.name, ep.value, distribution_of(ep), problem)
            continue
        discovered.registry.add(ep.name, obj, source)
    return discovered


def _validate(obj: object, name: str, expected_type: type, kind: str) -> str | None:
    if not isinstance(obj, expected_type):
        return f"entry point names a {type(obj).__name__}, not a {expected_type.__name__}"
    obj_name = getattr(obj, "name", None)
    if obj_name != name:
        return (f"entry point is called '{name}' but the {kind} calls itself '{obj_name}' (the entry-point name "
                f"must equal the {kind}'s name: rename one of them)")
    return None


@functools.cache
def methods() -> Discovered:
    """Installed method plugins (cached; pass entry points to :func:`load_group` for others)."""
    from edgeir.method import MethodSpec

    return load_group(METHODS_GROUP, MethodSpec, "method")


@functools.cache
def targets() -> Discovered:
    """Installed export targets."""
    from edgeir.target import Target

    return load_group(TARGETS_GROUP, Target, "target")


@functools.cache
def quant_schemes() -> Discovered:
    """Installed quantization / precision schemes."""
    from edgeir.quantization.scheme import QuantScheme

    return load_group(QUANT_GROUP, QuantScheme, "quantization scheme")
