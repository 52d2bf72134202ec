"""What the plugins' ``__init__`` modules share: lazy hooks, the shipped-weights table, recipe pieces.

Nothing here imports PyTorch at module level, so a plugin's ``__init__`` stays light (``edgeir list``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgeir.weights.shipped import weights_table

if TYPE_CHECKING:
    from torch import nn

    from edgeir.method import MethodSpec
    from edgeir.recipe import Program, RecipeOptions, TileSpec
    from edgeir.weights.shipped import ShippedWeights

__all__ = ["HOOKS", "SHIPPED", "Lazy", "builtin_spec", "image_program", "program_size", "shipped_weights", "tile"]

#: The (variant, task) pairs every built-in plugin ships weights for (files ``weights/<variant>-<task>.safetensors``).
SHIPPED = (("tiny", "denoise25"), ("mobile", "denoise25"))


@dataclass(frozen=True)
class Lazy:
    """A ``MethodSpec`` hook named ``"package.module:function"``, imported on its first call.

    The plugin's ``__init__`` names the function without importing its module (which imports
    PyTorch); a dataclass rather than a closure, so specs stay comparable and picklable.
    """

    target: str

    def resolve(self) -> Callable[..., Any]:
        """The named function."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


def shipped_weights(plugin_file: str) -> tuple[ShippedWeights, ...]:
    """The ``MethodSpec.weights`` table of a built-in plugin: its files for the :data:`SHIPPED` pairs."""
    return weights_table(plugin_file, *SHIPPED)


def program_size(options: RecipeOptions, default: int, multiple: int, method: str,
                 why: str = "") -> tuple[int, int]:
    """The exported (H, W): the options' size, else ``default`` square, checked against ``multiple``.

    Raises:
        UsageError: if H or W is not a multiple of ``multiple`` (``why`` may say why it must be).
    """
    from edgeir.errors import UsageError

    height, width = options.input_size or (default, default)
    if height % multiple or width % multiple:
        raise UsageError(f"{method} needs H and W multiples of {multiple}{why}; got {height}x{width}")
    return height, width


def image_program(model: nn.Module, height: int, width: int, multiple: int, scale: int = 1,
                  dynamic: bool = True) -> Program:
    """The one ``forward`` program of an RGB restorer: ``image (1, 3, H, W) -> restored``.

    ``dynamic``: targets with dynamic shapes take H and W from ``multiple`` to 4096 in steps of
    ``multiple``; False for a static shape (TLC windows, internal padding that depends on H and W).
    """
    from edgeir.recipe import DynamicSize, Program, TensorSpec

    return Program(
        name="forward",
        module=model,
        inputs=(TensorSpec("image", (1, 3, height, width), pad_to=multiple),),
        outputs=(TensorSpec("restored", (1, 3, height * scale, width * scale), scale=scale),),
        dynamic_hw=DynamicSize(min=multiple, max=4096, multiple=multiple) if dynamic else None,
    )


def tile(height: int, width: int, multiple: int, overlap: int = 32, global_state: str = "none") -> TileSpec:
    """Tiles of the program's size, overlapping by ``overlap`` but at most a quarter of the height.

    ``global_state`` as :attr:`edgeir.recipe.TileSpec.global_state`.
    """
    from edgeir.recipe import TileSpec

    return TileSpec(size=(height, width), overlap=min(overlap, height // 4), multiple=multiple,
                    global_state=global_state)


#: The ``MethodSpec`` hooks a built-in plugin defines as module attributes of the same names. The
#: optional ``objective`` and ``adaptive`` are passed to :func:`builtin_spec` explicitly (FlexIR has
#: submodules of those names, which would replace package attributes once imported).
HOOKS = ("build", "recipe", "io", "convert_checkpoint")


def builtin_spec(module_name: str, **fields: Any) -> MethodSpec:
    """The spec of a built-in plugin package: ``fields`` (name, summary, paper, tasks, variants, default
    task, optional hooks) plus the :data:`HOOKS` its module defines, and its shipped weights.

    Call it at the end of the plugin's ``__init__`` as ``builtin_spec(__name__, ...)``. A hook given
    in ``fields`` wins over the module's. Without a ``convert_checkpoint`` the module's checkpoints
    are read by :func:`~.checkpoint.basicsr_state_dict` (its modules carry the official names,
    nothing is renamed).

    Raises:
        TypeError: if a hook name is taken by a submodule rather than a function.
    """
    import sys
    import types

    from edgeir.method import MethodSpec

    module = sys.modules[module_name]
    hooks: dict[str, Any] = {"convert_checkpoint": Lazy("edgeir.plugins._layers.checkpoint:basicsr_state_dict")}
    for name in HOOKS:
        hook = getattr(module, name, None)
        if isinstance(hook, types.ModuleType):
            raise TypeError(f"{module_name}.{name} is a submodule, not the '{name}' hook; pass the hook explicitly")
        if hook is not None:
            hooks[name] = hook
    hooks.update(fields)
    return MethodSpec(**hooks, weights=shipped_weights(module.__file__))
