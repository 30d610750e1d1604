"""Two-phase microstructures: thresholded Gaussian random fields and layered test images.

A Gaussian random field smoothed at length scale ``ell`` and cut at its ``1 - vf``
quantile gives a two-phase image with exactly the requested volume fraction of phase 1
(to one pixel) and features of size ~``ell`` — the usual cheap stand-in for spinodal
(Cahn–Hilliard) morphologies.  Periodic smoothing keeps the statistics homogeneous up
to the image edge.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def gaussian_random_field_microstructure(
    size: int, volume_fraction: float, length_scale: float, seed: int | np.random.Generator
) -> np.ndarray:
    """A ``size × size`` 0/1 image with ``volume_fraction`` of phase 1 and feature size ``length_scale`` px."""
    if size < 2:
        raise ValueError(f"size must be at least 2 pixels, got {size}")
    if not 0.0 < volume_fraction < 1.0:
        raise ValueError(f"volume_fraction must lie in (0, 1), got {volume_fraction}")
    if not length_scale > 0:
        raise ValueError(f"length_scale must be positive, got {length_scale}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((size, size)), sigma=length_scale, mode="wrap")
    n_one = int(round(volume_fraction * size * size))
    order = np.argsort(field, axis=None)[::-1]
    image = np.zeros(size * size)
    image[order[:n_one]] = 1.0
    return image.reshape(size, size)


def layered_microstructure(size: int, n_layers_k1: int, orientation: str) -> np.ndarray:
    """Layers of phase 1 in the first ``n_layers_k1`` rows ('parallel') or columns ('series')."""
    if not 0 <= n_layers_k1 <= size:
        raise ValueError(f"n_layers_k1 must lie in [0, {size}], got {n_layers_k1}")
    image = np.zeros((size, size))
    if orientation == "parallel":  # rows: layers run along the heat flow
        image[:n_layers_k1, :] = 1.0
    elif orientation == "series":  # columns: layers stacked across the heat flow
        image[:, :n_layers_k1] = 1.0
    else:
        raise ValueError(f"orientation must be 'parallel' or 'series', got {orientation!r}")
    return image


def volume_fraction(image: np.ndarray) -> float:
    """Share of pixels in phase 1."""
    return float(np.mean(np.asarray(image) > 0.5))
