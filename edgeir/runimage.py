"""Running an artifact on an image file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeir.bundle import Bundle
from edgeir.discovery import targets
from edgeir.errors import UsageError
from edgeir.imageio import read_image, write_image


def run(bundle: str | Path | Bundle, image: str | Path, output: str | Path, *, program: str | None = None) -> Path:
    """Restore ``image`` with the bundle's artifact and write the result to ``output``.

    The image must fit the program: its exact shape for a static program, or a size in the
    program's dynamic range (tiling of larger photos is a separate feature).

    Raises:
        UsageError: if the image does not fit, or the artifact cannot run on this host.
        ImageError: if the image cannot be read or the output cannot be written.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    spec = bundle.program(program)
    target = targets().get(bundle.target)
    runner = target.runtime(bundle)
    if runner is None:
        raise UsageError(f"cannot run a {bundle.target} artifact here: {target.runtime_unavailable_reason()}")
    pixels = read_image(image)
    _, channels, height, width = spec["inputs"][0]["shape"]
    h, w = pixels.shape[:2]
    exported_dynamic = bundle.manifest["target_details"].get("dynamic_hw", {}).get(spec["name"], False)
    dynamic = spec.get("dynamic_hw") if exported_dynamic else None
    if dynamic:
        fits = all(dynamic["min"] <= s <= dynamic["max"] and s % dynamic["multiple"] == 0 for s in (h, w))
        need = f"H and W multiples of {dynamic['multiple']} between {dynamic['min']} and {dynamic['max']}"
    else:
        fits = (h, w) == (height, width)
        need = f"exactly {width}x{height}"
    if not fits:
        raise UsageError(f"{image} is {w}x{h}; program '{spec['name']}' of this bundle takes {need} "
                         "(crop or resize it; tiled inference of any size is not available yet)")
    batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None, :channels], dtype=np.float32)
    result = runner.run(spec["name"], [batch])[0][0].transpose(1, 2, 0)
    return write_image(output, result)
