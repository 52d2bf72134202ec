"""Tiles that share state computed once from the whole photo (``TileSpec.global_state = "program:<name>"``).

Some methods summarise the whole input in a small vector and condition every pixel on it (DiffIR's
IPR: a 256-float prior from CPEN + the reverse diffusion). Restoring a large photo tile by tile
would give every tile its own summary, computed from a crop; instead the photo is down-scaled
(area average) to the summary program's input size, that program runs once, and its output is fed
to every tile as the tile program's extra input (:attr:`edgeir.recipe.TensorSpec.source`). Tiles
then agree with each other, and the cost of the summary is paid once per photo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeir.runtime.feeds import PROGRAM_SOURCE, fill_inputs, photo_inputs

#: ``run(program_name, inputs) -> first output``: an artifact runner or the eager reference.
RunProgram = Callable[[str, list[np.ndarray]], np.ndarray]


def resize_area(image_hwc: np.ndarray, height: int, width: int) -> np.ndarray:
    """An HxWxC image resized to ``height`` x ``width`` by area averaging (Pillow's box filter), float32.

    Integer images (uint8 / uint16) are scaled to [0, 1] first.
    """
    from PIL import Image

    image = np.asarray(image_hwc)
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image, dtype=np.float32)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32), mode="F")
                           .resize((width, height), Image.BOX)) for c in range(image.shape[2])]
    return np.stack(channels, axis=-1).astype(np.float32)


def tile_program_for(programs: Sequence[dict[str, Any]], global_state: str) -> dict[str, Any] | None:
    """The program whose extra input is fed from ``global_state`` (``program:<name>``), or None."""
    if not global_state.startswith(PROGRAM_SOURCE):
        return None
    for program in programs:
        if any(spec.get("source") == global_state for spec in program["inputs"]):
            return program
    return None


def tile_runner(run: RunProgram, program: dict[str, Any], programs: Sequence[dict[str, Any]],
                image_hwc: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``run_tile(batch)`` for one photo: ``program`` on a tile, its other inputs filled once per photo.

    ``program:<name>`` inputs are the output of program ``<name>`` run once on the whole photo,
    down-scaled to that program's exported input size; ``zeros`` inputs are zeros.

    Args:
        run: Runs a named program on its inputs and returns its first output.
        program: Manifest entry of the tile program.
        programs: Manifest entries of every program of the bundle.
        image_hwc: The whole photo (HxWxC, float in [0, 1] or an integer type).
    """
    by_name = {p["name"]: p for p in programs}
    cache: dict[str, np.ndarray] = {}

    def from_program(name: str) -> np.ndarray:
        if name not in cache:
            source = by_name[name]
            _, channels, height, width = source["inputs"][photo_inputs(source)[0]]["shape"]
            small = resize_area(np.asarray(image_hwc)[:, :, :channels], height, width)
            batch = np.ascontiguousarray(small.transpose(2, 0, 1)[None])
            cache[name] = run(name, fill_inputs(source, batch, from_program))
        return cache[name]

    def run_tile(batch: np.ndarray) -> np.ndarray:
        return run(program["name"], fill_inputs(program, batch, from_program))

    return run_tile
