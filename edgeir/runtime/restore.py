"""Running an artifact on photos of any size: a file or a folder in, a file or a folder out.

Photos are cut into overlapping tiles of the program's shape (:mod:`edgeir.runtime.tiling`); a program
exported with dynamic H/W (ONNX) takes larger tiles, up to the whole photo. Alpha, bit depth and
the ICC profile of each photo are carried to its output; outputs are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.bundle import Bundle
from edgeir.data.imageio import IMAGE_EXTENSIONS, Picture, check_output_path, load_image, write_image
from edgeir.discovery import methods, targets
from edgeir.errors import BatchError, EdgeirError, UsageError
from edgeir.progress import progress_bar
from edgeir.runtime.feeds import photo_inputs, runs_on_photos
from edgeir.runtime.tiling import dynamic_tile, restore_tiled
from edgeir.runtime.whole_photo import tile_program_for, tile_runner
from edgeir.target import require

# Largest tile side for programs with dynamic H/W: bigger tiles mean fewer seams but more memory.
DYNAMIC_TILE = 512


@dataclass(frozen=True)
class TilePolicy:
    """How one program is tiled.

    Args:
        tile: (H, W) of a static program's tiles; None for a dynamic program (chosen per photo).
        overlap: Least overlap of neighbouring tiles, in input pixels.
        multiple: Tile sides are multiples of this.
        scale: Output size over input size.
        channels: Image channels the program takes.
        dynamic: (min, max) of H and W for a dynamic program.
    """

    tile: tuple[int, int] | None
    overlap: int
    multiple: int
    scale: int
    channels: int
    dynamic: tuple[int, int] | None = None

    def tile_for(self, height: int, width: int) -> tuple[int, int]:
        """Tile size for a ``height`` x ``width`` photo."""
        if self.tile is not None:
            return self.tile
        low, high = self.dynamic
        return dynamic_tile(height, width, self.multiple, low, high, DYNAMIC_TILE)


def tile_policy(bundle: Bundle, program: dict[str, Any]) -> TilePolicy:
    """The tiling of ``program`` from the bundle's manifest (recipe tile, I/O, dynamic shapes).

    Raises:
        UsageError: if the program does not take one image and return one image.
    """
    inputs, outputs = program["inputs"], program["outputs"]
    if not (runs_on_photos(program, bundle.programs) and outputs[0]["kind"] == "image"):
        raise UsageError(f"program '{program['name']}' of {bundle.path.name} does not map one image to one image; "
                         "it cannot restore a photo on its own")
    tile = bundle.manifest["recipe"].get("tile", {})
    global_state = tile.get("global_state", "none")
    if global_state != "none" and tile_program_for(bundle.programs, global_state) is None:
        raise UsageError(f"{bundle.path.name} needs global state for its tiles ({global_state}), "
                         "which this edgeir cannot provide")
    photo = inputs[photo_inputs(program)[0]]
    _, channels, height, width = photo["shape"]
    multiple = max(int(tile.get("multiple", 1)), int(photo.get("pad_to", 1)))
    overlap = int(tile.get("overlap", 0))
    scale = int(outputs[0].get("scale", 1))
    dynamic = program.get("dynamic_hw")
    if dynamic and bundle.dynamic_hw(program["name"]):
        multiple = max(multiple, int(dynamic["multiple"]))
        return TilePolicy(None, overlap, multiple, scale, channels, (int(dynamic["min"]), int(dynamic["max"])))
    return TilePolicy((height, width), overlap, multiple, scale, channels)


def restore_picture(picture: Picture, run_tile: Callable[[np.ndarray], np.ndarray], policy: TilePolicy,
                    *, desc: str = "") -> np.ndarray:
    """Restore one photo tile by tile, with a progress bar over its tiles; float32 HxWxC out."""
    height, width = picture.size
    pixels = picture.rgb[:, :, :policy.channels] if policy.channels < 3 else picture.rgb
    with progress_bar(total=None, desc=desc, unit="tile") as bar:
        return restore_tiled(pixels, run_tile, policy.tile_for(height, width), policy.overlap, policy.multiple,
                             policy.scale, progress=bar)


def default_program(bundle: Bundle) -> dict[str, Any]:
    """The program ``run`` uses when none is named: with ``global_state = "program:<name>"``, the one
    fed from it (DiffIR: ``restore``, given one IPR from the whole photo); otherwise the first."""
    global_state = bundle.manifest["recipe"].get("tile", {}).get("global_state", "none")
    return tile_program_for(bundle.programs, global_state) or bundle.program()


def _open(bundle: str | Path | Bundle, program: str | None, adaptive: float | None = None,
          log: list[dict[str, Any]] | None = None, trust_key: str | Path | None = None):
    """The tile policy and ``make_run_tile(pixels) -> run_tile`` (state shared by tiles is computed per photo).

    With ``adaptive``, each tile is one region of the method's early-exit controller, which picks
    the tile's exit itself; what it did per tile is appended to ``log``.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    bundle.verified(trust_key)  # never run an artifact that is not the one exported (edgeir.integrity)
    spec = bundle.program(program) if program else default_program(bundle)
    policy = tile_policy(bundle, spec)
    target = targets().get(bundle.target)
    runner = require(target.runtime(bundle), f"cannot run a {bundle.target} artifact here")
    runner.say_slow_once()  # an interpreted runtime says so, once

    def run(name: str, inputs: list[np.ndarray]) -> np.ndarray:
        return runner.run(name, inputs)[0]

    if adaptive is not None:
        controller = methods().get(bundle.method).adaptive
        if controller is None:
            raise UsageError(f"method '{bundle.method}' has no adaptive inference; drop --adaptive")
        run_region = controller(runner, bundle.manifest, adaptive)

        def make_adaptive_tile(pixels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            def run_tile(batch: np.ndarray) -> np.ndarray:
                restored, facts = run_region(batch)
                if log is not None:
                    log.append(facts)
                return restored

            return run_tile

        return policy, make_adaptive_tile

    def make_run_tile(pixels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return tile_runner(run, spec, bundle.programs, pixels)

    return policy, make_run_tile


def _restore_file(path: Path, output: Path, make_run_tile, policy: TilePolicy) -> Path:
    picture = load_image(path)
    result = restore_picture(picture, make_run_tile(picture.rgb), policy, desc=path.name)
    alpha = picture.alpha
    if alpha is not None and policy.scale > 1:
        alpha = np.repeat(np.repeat(alpha, policy.scale, axis=0), policy.scale, axis=1)
    return write_image(output, result, bits=picture.bits, alpha=alpha, icc_profile=picture.icc_profile,
                       grey=picture.grey)


def run(bundle: str | Path | Bundle, image: str | Path, output: str | Path, *, program: str | None = None,
        trust_key: str | Path | None = None) -> Path:
    """Restore the photo ``image`` (any size) with the bundle's artifact and write it to ``output``.

    Args:
        bundle: Bundle directory (or an opened bundle).
        image: Input photo (PNG, JPEG, TIFF, WebP; 8 or 16 bit; grey, RGB or RGBA).
        output: Output file; its extension picks the format.
        program: Program to run (by default the bundle's first, or the tile program its global state feeds).
        trust_key: ed25519 public key (PEM) the bundle must be signed with.

    Raises:
        UsageError: if the program does not restore single images or cannot run on this host, or
            ``output`` is the input.
        IntegrityError: if the bundle fails the integrity check.
        ImageError: naming the file, if the image cannot be read or the output cannot be written.
    """
    _check_pair(Path(image), Path(output))
    policy, make_run_tile = _open(bundle, program, trust_key=trust_key)
    return _restore_file(Path(image), Path(output), make_run_tile, policy)


def _check_pair(source: Path, target: Path) -> None:
    """Before any work: the output's extension is one edgeir writes, and the output is not the input."""
    check_output_path(target)
    if target.exists() and (target.resolve() == source.resolve() or os.path.samefile(target, source)):
        raise UsageError(f"output {target} is the input photo; choose another path so the input is not overwritten")


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def restore(bundle: str | Path | Bundle, source: str | Path, output: str | Path, *,
            program: str | None = None, adaptive: float | None = None,
            trust_key: str | Path | None = None) -> list[Path]:
    """Restore a photo, or every photo directly inside a folder, with the bundle's artifact.

    A folder's photos go into the folder ``output`` under their own names; a single photo goes to
    the file ``output`` (or into it, keeping its name, when ``output`` is an existing folder).
    ``adaptive`` (a threshold) runs the method's early-exit controller instead of one program; use
    :func:`restore_adaptive` to get what it did. An output never replaces an input, and the output
    path is checked before any photo is restored. A folder run goes on past a photo that fails.

    Returns:
        The files written.

    Raises:
        UsageError: if ``source`` does not exist, a folder holds no images, the output is the input,
            or the artifact cannot run.
        IntegrityError: if the bundle fails the integrity check.
        ImageError: naming the file, when a single photo cannot be read or written (none is left half-written).
        BatchError: after a folder run in which some photos failed: it lists each failure and the
            files that were written.
    """
    return [path for path, _ in _restore_all(bundle, source, output, program, adaptive, trust_key)]


def restore_adaptive(bundle: str | Path | Bundle, source: str | Path, output: str | Path, *,
                     threshold: float, trust_key: str | Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Adaptive inference on photos: every tile (a region of the program's shape) takes its own exit.

    Returns:
        Per photo written, a summary: ``regions``, ``exits`` (one per tile, in tile order),
        ``mean_exit``, ``macs`` spent, ``full_macs`` (every region through the deepest exit),
        ``macs_fraction`` (their ratio) and ``region_macs`` (MACs spent per tile).
    """
    return _restore_all(bundle, source, output, None, threshold, trust_key)


def _summary(facts: list[dict[str, Any]]) -> dict[str, Any]:
    exits = [f["exit"] for f in facts]
    macs, full = sum(f["macs"] for f in facts), sum(f["full_macs"] for f in facts)
    return {"regions": len(facts), "exits": exits, "mean_exit": round(float(np.mean(exits)), 3) if exits else None,
            "macs": macs, "full_macs": full, "macs_fraction": round(macs / full, 4) if full else None,
            "region_macs": [f["macs"] for f in facts], "scores": [f.get("scores") for f in facts]}


def _restore_all(bundle, source, output, program, adaptive,
                 trust_key=None) -> list[tuple[Path, dict[str, Any] | None]]:
    source, output = Path(source), Path(output)
    if not source.exists():
        raise UsageError(f"{source} does not exist")
    if source.is_dir():
        files = image_files(source)
        if not files:
            raise UsageError(f"folder {source} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} is a file; a folder of photos needs an output folder")
        if output.resolve() == source.resolve():
            raise UsageError(f"output folder {output} is the input folder; choose another so no photo is overwritten")
        pairs = [(path, output / path.name) for path in files]
    else:
        pairs = [(source, output / source.name if output.is_dir() else output)]
    for path, target in pairs:
        _check_pair(path, target)
    log: list[dict[str, Any]] = []
    policy, make_run_tile = _open(bundle, program, adaptive, log, trust_key)

    def restore_one(path: Path, target: Path) -> tuple[Path, dict[str, Any] | None]:
        log.clear()
        written = _restore_file(path, target, make_run_tile, policy)
        return written, _summary(log) if adaptive is not None else None

    if len(pairs) == 1:
        return [restore_one(*pairs[0])]
    results, failures = [], []
    with progress_bar(total=len(pairs), desc="photos", unit="photo") as bar:
        for path, target in pairs:
            try:
                results.append(restore_one(path, target))
            except EdgeirError as exc:  # one bad photo never stops the batch
                failures.append((path, str(exc)))
            except (RuntimeError, ValueError, MemoryError, OSError) as exc:  # the runtime refused this photo
                failures.append((path, f"{type(exc).__name__}: {exc}"))
            bar.update(1)
    if failures:
        names = ", ".join(path.name for path, _ in failures)
        raise BatchError(f"{len(failures)} of {len(pairs)} photos failed ({names}); {len(results)} restored into "
                         f"{output}", [path for path, _ in results], failures)
    return results
