"""Labelled microstructure data: Gaussian-random-field images with solver-computed conductivity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab_adapters.simlab.physics.conduction import effective_conductivity
from lab_adapters.simlab.physics.microstructure import gaussian_random_field_microstructure


@dataclass(frozen=True)
class MicrostructureData:
    images: np.ndarray  # (n, size, size) of 0/1
    conductivity: np.ndarray  # (n,) effective conductivity along the columns
    volume_fraction: np.ndarray  # (n,) requested fraction of phase 1
    length_scale: np.ndarray  # (n,) feature size in pixels


def microstructure_dataset(
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    volume_fraction_range: tuple[float, float] = (0.15, 0.85),
    length_scale_range: tuple[float, float] = (3.0, 8.0),
    k0: float = 1.0,
    k1: float = 10.0,
) -> MicrostructureData:
    """``n`` random microstructures with volume fraction and length scale drawn uniformly from their ranges."""
    rng = np.random.default_rng(seed)
    vf = rng.uniform(*volume_fraction_range, size=n)
    ell = rng.uniform(*length_scale_range, size=n)
    images = np.stack([gaussian_random_field_microstructure(size, v, s, rng) for v, s in zip(vf, ell, strict=True)])
    kappa = np.array([effective_conductivity(im, k0, k1) for im in images])
    return MicrostructureData(images, kappa, vf, ell)
