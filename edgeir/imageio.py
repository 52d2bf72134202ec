"""Reading and writing image files as float32 RGB arrays in [0, 1]."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeir.errors import ImageError


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 float32 RGB array in [0, 1].

    Grey images are repeated to three channels, alpha is dropped, 16-bit images keep their
    precision.

    Raises:
        ImageError: naming the file, if it is missing, empty or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist")
    if path.stat().st_size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()
            return _to_rgb_float(image)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path} is not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image {path} is damaged or truncated: {exc}") from exc


def _to_rgb_float(image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.float32)
        grey = grey / (65535.0 if grey.max() > 255 or image.mode.startswith("I;16") else 255.0)
        return np.repeat(grey[:, :, None], 3, axis=2).clip(0, 1)
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2).clip(0, 1)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an HxWx3 float array in [0, 1] as an 8-bit image; atomic (no partial file on error).

    Raises:
        ImageError: if the format is unknown or the file cannot be written.
    """
    from PIL import Image

    path = Path(path)
    array = np.round(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        fmt = Image.registered_extensions().get(path.suffix.lower())
        if fmt is None:
            raise ImageError(f"cannot write {path}: unknown image extension '{path.suffix}'")
        Image.fromarray(array).save(tmp, format=fmt)
        os.replace(tmp, path)
    except ImageError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot write {path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
