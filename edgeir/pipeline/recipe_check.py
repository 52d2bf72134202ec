"""Checks of a plugin's recipe against the program it exports, before anything is exported.

A method plugin declares each program's inputs and outputs (shapes, scale, pad-to multiple, value
range) and the tiling (tile size, overlap, multiple); ``edgeir run`` and an app trust those fields.
A wrong one would export, verify and then fail at run time, so export refuses it up front and
names the field.
"""

from __future__ import annotations

import math
from typing import Any

from edgeir.errors import StageError


def _fail(method: str, field: str, message: str) -> StageError:
    return StageError("recipe", f"method '{method}' declares a wrong {field}: {message}")


def check_tile(method: str, tile: Any) -> None:
    """``recipe.tile``: positive size, multiple >= 1 dividing the size, 0 <= overlap < the tile's smaller side.

    Raises:
        StageError: ('recipe') naming the field.
    """
    size = tuple(tile.size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise _fail(method, "recipe.tile.size", f"{list(size)} (two positive integers H, W)")
    if not isinstance(tile.multiple, int) or tile.multiple < 1:
        raise _fail(method, "recipe.tile.multiple", f"{tile.multiple!r} (a positive integer)")
    if any(s % tile.multiple for s in size):
        raise _fail(method, "recipe.tile.size", f"{list(size)} is not a multiple of recipe.tile.multiple "
                                                f"{tile.multiple}")
    if not isinstance(tile.overlap, int) or not 0 <= tile.overlap < min(size):
        raise _fail(method, "recipe.tile.overlap", f"{tile.overlap!r} (0 or more, and less than the tile's "
                                                   f"smaller side {min(size)})")


def check_program(method: str, program: Any, outputs: tuple) -> None:
    """One program's declared I/O against what its module returns for its example inputs.

    Args:
        method: Method name, for messages.
        program: The :class:`~edgeir.recipe.Program`.
        outputs: The module's outputs (tensors) on ``program.example_inputs()``.

    Raises:
        StageError: ('recipe') naming the field, e.g. ``programs[forward].outputs[0].shape``.
    """
    where = f"programs[{program.name}]"
    for index, spec in enumerate(program.inputs):
        field = f"{where}.inputs[{index}]"
        _check_spec(method, field, spec)
        if spec.kind == "image" and (spec.shape[-1] % spec.pad_to or spec.shape[-2] % spec.pad_to):
            raise _fail(method, f"{field}.pad_to", f"{spec.pad_to}, but the exported shape {list(spec.shape)} is "
                                                   "not a multiple of it")
    if len(outputs) != len(program.outputs):
        raise _fail(method, f"{where}.outputs", f"{len(program.outputs)} output(s) declared, the program returns "
                                                f"{len(outputs)}")
    photo = next((s for s in program.inputs if s.kind == "image" and not s.source), None)
    for index, (spec, tensor) in enumerate(zip(program.outputs, outputs, strict=True)):
        field = f"{where}.outputs[{index}]"
        _check_spec(method, field, spec)
        actual = list(tensor.shape)
        if list(spec.shape) != actual:
            raise _fail(method, f"{field}.shape", f"{list(spec.shape)}, the program returns {actual}")
        if spec.kind == "image" and photo is not None and len(photo.shape) == 4 and len(actual) == 4:
            expected = [photo.shape[-2] * spec.scale, photo.shape[-1] * spec.scale]
            if actual[-2:] != expected:
                raise _fail(method, f"{field}.scale", f"{spec.scale}: the output is {actual[-2]}x{actual[-1]} for a "
                                                      f"{photo.shape[-2]}x{photo.shape[-1]} input")
    dynamic = program.dynamic_hw
    if dynamic is not None and not (1 <= dynamic.min <= dynamic.max and dynamic.multiple >= 1):
        raise _fail(method, f"{where}.dynamic_hw", f"min {dynamic.min}, max {dynamic.max}, multiple "
                                                   f"{dynamic.multiple} (need 1 <= min <= max, multiple >= 1)")


def _check_spec(method: str, field: str, spec: Any) -> None:
    if not spec.shape or not all(isinstance(s, int) and s > 0 for s in spec.shape):
        raise _fail(method, f"{field}.shape", f"{list(spec.shape)} (positive integers)")
    if not isinstance(spec.scale, int) or spec.scale < 1:
        raise _fail(method, f"{field}.scale", f"{spec.scale!r} (a positive integer)")
    if not isinstance(spec.pad_to, int) or spec.pad_to < 1:
        raise _fail(method, f"{field}.pad_to", f"{spec.pad_to!r} (a positive integer)")
    low, high = spec.value_range
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise _fail(method, f"{field}.value_range", f"{list(spec.value_range)} (finite, low < high)")
    if spec.kind == "image" and len(spec.shape) != 4:
        raise _fail(method, f"{field}.shape", f"{list(spec.shape)} (an image is N, C, H, W)")


def check_recipe(method: str, recipe: Any) -> None:
    """Run each program once on its example inputs and check the recipe's tile and I/O declarations.

    Raises:
        StageError: ('recipe') naming the first wrong field.
    """
    import torch

    check_tile(method, recipe.tile)
    for program in recipe.programs:
        for index, spec in enumerate(program.inputs):
            _check_spec(method, f"programs[{program.name}].inputs[{index}]", spec)
        with torch.no_grad():
            outputs = program.module.eval()(*program.example_inputs())
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
        check_program(method, program, outputs)
