"""Image-quality metrics on float arrays in [0, 1]."""

from __future__ import annotations

import math

import numpy as np

# Identical images have infinite PSNR; report this ceiling instead so results stay finite JSON.
PSNR_CEILING_DB = 200.0


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB between two images, after clipping both to [0, data_range] as a viewer would."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, data_range)
    b = np.clip(np.asarray(b, dtype=np.float64), 0.0, data_range)
    mse = float(np.mean((a - b) ** 2))
    if mse <= data_range**2 * 10 ** (-PSNR_CEILING_DB / 10):
        return PSNR_CEILING_DB
    return 10.0 * math.log10(data_range**2 / mse)


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference, unclipped."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def vector_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of ``a`` against the reference ``b`` for values that are not pixels (feature vectors).

    Unclipped; the peak is the reference's largest magnitude (at least 1e-12), so the figure says
    how many dB the error sits below the signal, whatever its range.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    peak = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-12)
    mse = float(np.mean((a - b) ** 2))
    if mse <= peak**2 * 10 ** (-PSNR_CEILING_DB / 10):
        return PSNR_CEILING_DB
    return 10.0 * math.log10(peak**2 / mse)
