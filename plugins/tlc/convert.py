"""The generic TLC converter: find a model's global modules, size their windows, swap in local ones.

A method plugin supplies *rules*: which module types hold a global operation, and how to make the
local version of one given its window. :func:`localize` does the rest, the same way for every
method, as the official ``Local_Base.convert`` does: the windows are the feature sizes each module
sees when the model runs at ``train_size``, times ``base_size / train_size`` (1.5 by default).
The state dict is unchanged (local modules add no parameters), so global checkpoints load as-is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from edgeir.recipe import TLCOptions

from .windows import kernel_for

__all__ = ["LocalRule", "calibrate", "localize", "swap_class"]

#: ``module type -> (module, kernel) -> local module``. Subclasses of a key match too.
LocalRule = Mapping[type, Callable[[nn.Module, tuple[int, int]], nn.Module]]


def swap_class(module: nn.Module, local_cls: type[nn.Module], **attributes: Any) -> nn.Module:
    """Turn ``module`` into an instance of ``local_cls`` in place, keeping its parameters and names.

    ``local_cls`` must be a subclass of the module's global class that only changes ``forward``
    (and adds plain attributes): that keeps every state-dict key, so weights stay shared with the
    global model. Used on a copy made by :func:`localize`, never on the caller's model.

    Raises:
        TypeError: if ``local_cls`` does not derive from the module's class or its global base.
    """
    if not (issubclass(local_cls, type(module)) or isinstance(module, local_cls)):
        raise TypeError(f"{local_cls.__name__} is not a local form of {type(module).__name__}")
    module.__class__ = local_cls
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def _matching(model: nn.Module, rules: LocalRule) -> dict[str, type]:
    found = {}
    for name, module in model.named_modules():
        for kind in rules:
            if isinstance(module, kind):
                found[name] = kind
                break
    return found


def calibrate(model: nn.Module, names: list[str], input_shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """(H, W) of the first input of each named module when ``model`` runs on ``input_shape``.

    Runs on the ``meta`` device: shapes propagate, nothing is computed, so it costs milliseconds
    even for a paper-size model.

    Raises:
        RuntimeError: if a named module is not reached by the forward pass.
    """
    probe = copy.deepcopy(model).to("meta").eval()
    modules = dict(probe.named_modules())
    sizes: dict[str, tuple[int, int]] = {}
    handles = []
    for name in names:
        def hook(_module, args, _name=name):
            sizes.setdefault(_name, (int(args[0].shape[-2]), int(args[0].shape[-1])))
        handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            probe(torch.empty(input_shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in names if name not in sizes]
    if missing:
        raise RuntimeError(f"TLC calibration: modules not reached by a forward pass: {missing[:5]}")
    return sizes


def localize(
    model: nn.Module, options: TLCOptions, rules: LocalRule, in_channels: int = 3
) -> tuple[nn.Module, dict[str, Any]]:
    """The Test-time Local Converter form of ``model`` (a new module; ``model`` is not modified).

    Every module matching ``rules`` (global or already local: re-localising re-derives the windows)
    gets the window ``kernel_for(options, feature size at train_size)``, found by :func:`calibrate`.

    Returns:
        The local model in eval mode, and a record for the manifest: ``train_size``, ``base_size``
        and ``layers`` (module name -> [kh, kw]).

    Raises:
        ValueError: if no module of ``model`` matches ``rules`` (it has no global operation to convert).
    """
    found = _matching(model, rules)
    if not found:
        kinds = ", ".join(sorted(kind.__name__ for kind in rules))
        raise ValueError(f"TLC found no global operation to convert in {type(model).__name__} (looked for {kinds})")
    shape = (1, in_channels, *options.train_size)
    sizes = calibrate(model, list(found), shape)
    local = copy.deepcopy(model).eval()
    modules = dict(local.named_modules())
    layers = {}
    for name, kind in found.items():
        kernel = kernel_for(options, sizes[name])
        replacement = rules[kind](modules[name], kernel)
        if replacement is not modules[name]:
            parent_name, _, child = name.rpartition(".")
            setattr(modules[parent_name] if parent_name else local, child, replacement)
        layers[name] = list(kernel)
    return local.eval(), {**options.to_json(), "layers": layers}
