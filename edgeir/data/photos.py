"""Built-in real photographs (bundled with scikit-image) and task degradations.

Nothing is downloaded: scikit-image ships these photos inside its wheel.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np

from edgeir.data.imageio import read_image
from edgeir.errors import UsageError

BUILTIN_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg")


def photo_dir() -> Path:
    """Directory of scikit-image's bundled photos (found without importing scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("scikit-image is not installed; it provides the built-in photos")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def builtin_photos(count: int | None = None) -> list[tuple[str, np.ndarray]]:
    """``(name, HxWx3 float32 RGB in [0, 1])`` for the first ``count`` built-in photos."""
    names = BUILTIN_PHOTOS[:count] if count else BUILTIN_PHOTOS
    return [(Path(name).stem, read_image(photo_dir() / name)) for name in names]


def fit_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop ``image`` to ``height`` x ``width``, reflect-padding any side that is too small."""
    h, w = image.shape[:2]
    pad_h, pad_w = max(0, height - h), max(0, width - w)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "symmetric"
        image = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                       mode=mode)
        h, w = image.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(image[top:top + height, left:left + width])


def degrade(image: np.ndarray, task: str, seed: int = 0) -> tuple[np.ndarray, str]:
    """Apply the task's degradation to a clean image.

    Returns:
        The degraded image and a short description of what was applied. Tasks whose synthetic
        degradation is not modelled here get the clean image, and the description says so.
    """
    rng = np.random.default_rng(seed)
    if task.startswith("denoise") and task[len("denoise"):].isdigit():
        sigma = int(task[len("denoise"):])
        return _noise(image, sigma, rng), f"gaussian noise sigma={sigma}/255"
    if task.startswith("allinone"):
        return _noise(image, 25, rng), "gaussian noise sigma=25/255 (one of the all-in-one degradations)"
    if task.startswith("jpeg") and task[len("jpeg"):].isdigit():
        quality = int(task[len("jpeg"):])
        return _jpeg(image, quality), f"JPEG quality {quality}"
    if task in _SYNTHETIC:
        from edgeir.data.degradations import degrade_image

        return degrade_image(image, task, rng), _SYNTHETIC[task]
    return image, "none (the clean photo; this task's synthetic degradation is not modelled)"


# Shape-preserving three-channel degradations of edgeir.data.degradations (see docs/training.md).
_SYNTHETIC = {"deblur": "Gaussian blur sigma 1-3 px + noise sigma 1/255", "derain": "synthetic rain streaks",
              "dehaze": "synthetic haze (atmospheric scattering, random depth)",
              "lowlight": "synthetic low light (gamma 1.5-2.5, gain 0.15-0.45, noise)"}


def _noise(image: np.ndarray, sigma: int, rng: np.random.Generator) -> np.ndarray:
    noisy = image + rng.normal(0.0, sigma / 255.0, size=image.shape)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
