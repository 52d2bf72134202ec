"""Feeding a program whose inputs are a photo plus vectors the app fills itself.

A program's manifest entry lists its inputs; one is the photo (kind ``image``, no ``source``) and
the others say where their value comes from (:attr:`edgeir.recipe.TensorSpec.source`): ``zeros``
(e.g. DiffIR's starting vector x_T) or ``program:<name>`` (the output of another program run on
the whole photo, e.g. DiffIR's IPR from ``prior``). ``verify`` and ``run`` use these helpers so
every such program is checked and run the way an app would run it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeir.errors import UsageError
from edgeir.evaluation.metrics import psnr, vector_psnr

PROGRAM_SOURCE = "program:"
ZEROS = "zeros"


def photo_inputs(program: dict[str, Any]) -> list[int]:
    """Indices of the inputs that take the photo (kind ``image``, no ``source``)."""
    return [i for i, spec in enumerate(program["inputs"]) if spec["kind"] == "image" and not spec.get("source")]


def source_program(spec: dict[str, Any]) -> str | None:
    """The program an input is fed from (``program:<name>``), or None."""
    source = spec.get("source", "")
    return source[len(PROGRAM_SOURCE):] if source.startswith(PROGRAM_SOURCE) else None


def runs_on_photos(program: dict[str, Any], programs: Sequence[dict[str, Any]], _seen: tuple[str, ...] = ()) -> bool:
    """Whether ``program`` maps one photo to one output once its other inputs are filled.

    True when it has exactly one photo input, one output, and every other input is ``zeros`` or
    comes from a program in ``programs`` that itself runs on photos (no cycles).
    """
    if len(photo_inputs(program)) != 1 or len(program["outputs"]) != 1 or program["name"] in _seen:
        return False
    by_name = {p["name"]: p for p in programs}
    for index, spec in enumerate(program["inputs"]):
        if index in photo_inputs(program):
            continue
        name = source_program(spec)
        if spec.get("source") == ZEROS:
            continue
        if name is None or name not in by_name:
            return False
        if not runs_on_photos(by_name[name], programs, (*_seen, program["name"])):
            return False
    return True


def fill_inputs(program: dict[str, Any], photo: np.ndarray, from_program: Callable[[str], np.ndarray]
                ) -> list[np.ndarray]:
    """The input list of ``program`` for one photo batch.

    Args:
        program: The program's manifest entry.
        photo: The 1xCxHxW float32 photo (or tile) batch.
        from_program: Returns the output of the named program (for ``program:<name>`` inputs).

    Raises:
        UsageError: for an input edgeir cannot fill (no source and not the photo).
    """
    feeds = []
    for spec in program["inputs"]:
        if spec["kind"] == "image" and not spec.get("source"):
            feeds.append(photo)
        elif spec.get("source") == ZEROS:
            feeds.append(np.zeros(spec["shape"], dtype=np.float32))
        elif (name := source_program(spec)) is not None:
            feeds.append(np.ascontiguousarray(from_program(name), dtype=np.float32))
        else:
            raise UsageError(f"input '{spec['name']}' of program '{program['name']}' is neither the photo nor "
                             "filled by edgeir (no 'source'); the app must provide it")
    return feeds


def output_psnr(got: np.ndarray, expected: np.ndarray, spec: dict[str, Any]) -> float:
    """PSNR of one output: clipped to [0, 1] for images, relative to the reference's peak for vectors."""
    if spec.get("kind", "image") == "image":
        return psnr(got, expected)
    return vector_psnr(got, expected)
