"""A strict, generic name -> object registry.

Method names identify benchmark results, so a name is never silently replaced: registering it
twice raises and names both sources. Asking for an unknown name lists what exists.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from edgeir.errors import PluginLoadError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one kind (methods, targets, quantization schemes) by name.

    Args:
        kind: What the objects are, for messages ("method", "target").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}

    def add(self, name: str, obj: T, source: str) -> None:
        """Register ``obj`` under ``name``.

        Raises:
            PluginLoadError: if ``name`` is taken; the message names both sources.
        """
        if name in self._items:
            raise PluginLoadError(
                f"{self.kind} '{name}' is registered twice: by {self._sources[name]} and by {source}; "
                "uninstall one of them"
            )
        self._items[name] = obj
        self._sources[name] = source

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            UnknownNameError: if ``name`` is unknown; the message lists the valid names and close matches.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def source(self, name: str) -> str:
        """Where ``name`` came from (an entry point and its distribution)."""
        self.get(name)
        return self._sources[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def unknown_name_message(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    """One sentence saying ``name`` is not a valid ``kind``, listing the valid ones."""
    valid = sorted(valid)
    message = f"unknown {kind} '{name}'; valid: {', '.join(valid) if valid else '(none registered)'}"
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    if close:
        message += f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    return message
