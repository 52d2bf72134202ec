"""Synthetic degradations per task, applied on the fly to clean HxWx3 float32 images in [0, 1].

One function, :func:`degrade_image`, maps a task name to its degradation. Every random choice
comes from the generator passed in, so a (seed, image) pair always gives the same degraded image.

Tasks and what they apply (the usual synthetic protocols of the restoration literature):

- ``denoiseN``: additive white Gaussian noise, sigma N/255.
- ``jpegQ``: JPEG compression at quality Q (Pillow, 4:2:0 as cameras write it).
- ``srS``: bicubic down-scaling by S (Pillow); the degraded image is S times smaller.
- ``deblur``: Gaussian blur, sigma uniform in [1, 3] px, plus sigma 1/255 noise.
- ``derain``: synthetic rain: sparse drops smeared into slanted streaks, added to the photo.
- ``dehaze``: atmospheric scattering ``I = J t + A (1 - t)``, ``t = exp(-beta d)`` with a smooth
  random depth map ``d``.
- ``lowlight``: ``I = k J^gamma`` (gamma in [1.5, 2.5], k in [0.15, 0.45]) plus sensor noise.
- ``inpaint``: random rectangles and thick strokes removed (set to 0); with 4 input channels the
  mask (1 = missing) is appended as channel 3.
- ``allinone3``: one of noise (sigma 15/25/50), rain, haze per image; ``allinone5`` adds blur and
  low light.
"""

from __future__ import annotations

import io
import math

import numpy as np

from edgeir.errors import UsageError

ALLINONE = {"allinone3": ("denoise15", "denoise25", "denoise50", "derain", "dehaze"),
            "allinone5": ("denoise15", "denoise25", "denoise50", "derain", "dehaze", "deblur", "lowlight")}
_PLAIN = ("deblur", "derain", "dehaze", "lowlight", "inpaint")


def task_scale(task: str) -> int:
    """Down-scaling factor of a task: S for ``srS``, else 1."""
    return _number(task, "sr") if task.startswith("sr") else 1


def check_task(task: str) -> str:
    """Return ``task`` if :func:`degrade_image` models it.

    Raises:
        UsageError: naming the task and the modelled families.
    """
    if task in ALLINONE or task in _PLAIN:
        return task
    for prefix in ("denoise", "jpeg", "sr"):
        if task.startswith(prefix) and task[len(prefix):].isdigit():
            if prefix == "sr" and int(task[2:]) < 2:
                break
            if prefix == "jpeg" and not 1 <= int(task[4:]) <= 100:
                break
            return task
    raise UsageError(f"no synthetic degradation for task '{task}'; modelled: denoiseN, jpegQ, srS, "
                     f"{', '.join(_PLAIN)}, {', '.join(ALLINONE)}")


def degrade_image(image: np.ndarray, task: str, rng: np.random.Generator, in_channels: int = 3) -> np.ndarray:
    """The degraded version of ``image`` for ``task``.

    Args:
        image: HxWx3 float32 in [0, 1]; for ``srS`` H and W must be multiples of S.
        task: Task name (see the module docstring).
        rng: Source of every random choice.
        in_channels: Channels the model takes: 3, or 4 for inpainting (masked image + mask).

    Returns:
        float32 array in [0, 1]: HxWxC, or (H/S)x(W/S)x3 for super-resolution.

    Raises:
        UsageError: for an unknown task, a size that is not a multiple of the scale, or a channel
            count the task cannot produce.
    """
    check_task(task)
    image = np.asarray(image, dtype=np.float32)
    if task in ALLINONE:
        task = ALLINONE[task][int(rng.integers(len(ALLINONE[task])))]
    if task == "inpaint":
        return _inpaint(image, rng, in_channels)
    if in_channels != 3:
        raise UsageError(f"task '{task}' produces 3-channel inputs; the model takes {in_channels}")
    if task.startswith("denoise"):
        out = add_noise(image, _number(task, "denoise") / 255.0, rng)
    elif task.startswith("jpeg"):
        out = jpeg(image, _number(task, "jpeg"))
    elif task.startswith("sr"):
        out = downscale(image, _number(task, "sr"))
    elif task == "deblur":
        out = add_noise(blur(image, float(rng.uniform(1.0, 3.0))), 1.0 / 255.0, rng)
    elif task == "derain":
        out = rain(image, rng)
    elif task == "dehaze":
        out = haze(image, rng)
    else:
        out = low_light(image, rng)
    return np.ascontiguousarray(out, dtype=np.float32)


def _number(task: str, prefix: str) -> int:
    return int(task[len(prefix):])


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise of standard deviation ``sigma`` (in [0, 1] units), clipped."""
    return np.clip(image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32), 0.0, 1.0)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through Pillow's JPEG encoder at ``quality``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, format="JPEG",
                                                                               quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic down-scaling by ``scale`` (Pillow, per channel in float, as MATLAB-style SR protocols do).

    Raises:
        UsageError: if H or W is not a multiple of ``scale``.
    """
    from PIL import Image

    h, w = image.shape[:2]
    if h % scale or w % scale:
        raise UsageError(f"sr{scale} needs crops whose sides are multiples of {scale}; got {h}x{w}")
    size = (w // scale, h // scale)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode="F")
                           .resize(size, Image.Resampling.BICUBIC)) for c in range(image.shape[2])]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur of ``sigma`` pixels (reflect border)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect")


def rain(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slanted rain streaks: sparse drops smeared by a line kernel, brightened and added."""
    from scipy.ndimage import convolve, gaussian_filter

    h, w = image.shape[:2]
    density = rng.uniform(0.002, 0.01)
    drops = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.6, 1.0, size=(h, w)).astype(np.float32)
    length = int(rng.integers(7, 19))
    angle = math.radians(rng.uniform(-30.0, 30.0))
    kernel = np.zeros((length, length), np.float32)
    centre = (length - 1) / 2
    for t in np.linspace(-centre, centre, 4 * length):
        kernel[int(round(centre + t * math.cos(angle))), int(round(centre + t * math.sin(angle)))] = 1.0
    streaks = convolve(gaussian_filter(drops, 0.5), kernel / kernel.sum() * length * 0.35, mode="wrap")
    streaks = np.clip(streaks, 0.0, 1.0) * rng.uniform(0.5, 0.9)
    return np.clip(image + streaks[:, :, None], 0.0, 1.0)


def haze(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering with a smooth random depth map and a bright, slightly tinted airlight."""
    from scipy.ndimage import gaussian_filter

    h, w = image.shape[:2]
    field = gaussian_filter(rng.random((h, w)).astype(np.float32), sigma=max(h, w) / 6, mode="reflect")
    field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * rng.uniform(0.0, 1.0)
    depth = np.clip(0.6 * field + 0.4 * ramp + 0.2, 0.0, 1.5)
    beta = rng.uniform(0.6, 1.8)
    transmission = np.exp(-beta * depth)[:, :, None]
    airlight = rng.uniform(0.7, 1.0) + rng.uniform(-0.03, 0.03, size=3)
    return np.clip(image * transmission + airlight * (1.0 - transmission), 0.0, 1.0)


def low_light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darkened exposure with a gamma curve and shot-like noise."""
    gamma = rng.uniform(1.5, 2.5)
    gain = rng.uniform(0.15, 0.45)
    dark = gain * np.power(np.clip(image, 0.0, 1.0), gamma)
    noise = rng.normal(0.0, 1.0, size=image.shape).astype(np.float32) * (0.002 + 0.02 * np.sqrt(dark))
    return np.clip(dark + noise, 0.0, 1.0)


def inpaint_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """HxW float32 mask, 1 where pixels are missing: a few rectangles and thick random strokes."""
    mask = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        mh = int(rng.integers(height // 10 + 1, height // 3 + 2))
        mw = int(rng.integers(width // 10 + 1, width // 3 + 2))
        top, left = int(rng.integers(0, max(1, height - mh))), int(rng.integers(0, max(1, width - mw)))
        mask[top:top + mh, left:left + mw] = 1.0
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(1, 4))):
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(1.0, max(2.0, min(height, width) / 16))
        for _ in range(int(rng.integers(3, 8))):
            angle, step = rng.uniform(0, 2 * math.pi), rng.uniform(2.0, max(3.0, min(height, width) / 6))
            for t in np.linspace(0.0, 1.0, 6):
                cy, cx = y + t * step * math.sin(angle), x + t * step * math.cos(angle)
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1.0
            y, x = np.clip(y + step * math.sin(angle), 0, height - 1), np.clip(x + step * math.cos(angle), 0, width - 1)
    return mask


def _inpaint(image: np.ndarray, rng: np.random.Generator, in_channels: int) -> np.ndarray:
    if in_channels not in (3, 4):
        raise UsageError(f"inpainting produces a masked image (3 channels) or image + mask (4); the model takes "
                         f"{in_channels}")
    mask = inpaint_mask(image.shape[0], image.shape[1], rng)
    masked = image * (1.0 - mask[:, :, None])
    return np.concatenate([masked, mask[:, :, None]], axis=2) if in_channels == 4 else masked
