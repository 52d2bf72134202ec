"""The ``<method>-local`` twin of a method: its spec with the TLC form built in (NAFNet-Local, Restormer-Local).

A twin has the global method's tasks, variants and weights (the state dict is the same); it builds
the local model, always exports it (its recipe is the global recipe with TLC's default options when
none are given), and declares no global operations (so ``--tlc`` is refused for it: it is local).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from edgeir.method import IOContract, MethodSpec
from edgeir.plugins._layers.spec import Lazy

if TYPE_CHECKING:
    from torch import nn

    from edgeir.recipe import ExportRecipe, RecipeOptions

__all__ = ["PAPER", "local_spec"]

PAPER = ("Chu et al., Improving Image Restoration by Revisiting Global Information Aggregation (TLC), "
         "ECCV 2022 (arXiv 2112.04491)")


@dataclass(frozen=True)
class _LocalBuild:
    build: Callable[[str, str], Any]
    to_local: Lazy

    def __call__(self, variant: str, task: str) -> nn.Module:
        return self.to_local(self.build(variant, task))[0]


@dataclass(frozen=True)
class _LocalRecipe:
    recipe: Callable[[Any, Any], Any]

    def __call__(self, model: nn.Module, options: RecipeOptions) -> ExportRecipe:
        from edgeir.recipe import TLCOptions

        return self.recipe(model, options if options.tlc is not None else replace(options, tlc=TLCOptions()))


@dataclass(frozen=True)
class _LocalIO:
    io: Callable[[str, str], IOContract]

    def __call__(self, variant: str, task: str) -> IOContract:
        return replace(self.io(variant, task), global_ops=())


def local_spec(spec: MethodSpec, to_local: str, summary: str) -> MethodSpec:
    """``spec``'s TLC twin, called ``<name>-local``.

    Args:
        spec: The global method; its recipe must export the TLC form when ``options.tlc`` is set.
        to_local: ``"module:function"`` of the method's ``to_local(model, options=None)``, which
            returns ``(local model, record)``.
        summary: The twin's line for ``edgeir list``.
    """
    return replace(spec, name=f"{spec.name}-local", summary=summary, paper=f"{PAPER}; {spec.paper}",
                   build=_LocalBuild(spec.build, Lazy(to_local)), recipe=_LocalRecipe(spec.recipe),
                   io=_LocalIO(spec.io))
