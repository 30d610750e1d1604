"""A pool of two-phase microstructure images: thresholded Gaussian random fields.

The image campaigns need something to measure before an inverse generator has
anything to learn from (the initial design and the ``janus`` cold start), and a
pool the ``auto`` generator can offer for a :class:`~matloop.space.MicrostructureSpace`.
A periodic Gaussian random field smoothed at length scale ``ell`` and cut at its
``1 - vf`` quantile gives exactly the requested volume fraction with features of
size ~``ell``, the usual cheap stand-in for spinodal morphologies.

The simulated lab has the same construction (``lab_adapters.simlab.physics``);
it is repeated here in a few lines because ``generators`` may not import the
lab adapters (DESIGN.md's layering), and a real lab would not ship it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import qmc

from generators.base import GenerationContext
from matloop.space import MicrostructureSpace
from matloop.types import Candidate, CandidateKind


def random_field_image(size: int, volume_fraction: float, length_scale: float, rng: np.random.Generator) -> np.ndarray:
    """A ``size × size`` 0/1 image with ``volume_fraction`` of phase 1 and features of ``length_scale`` px."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma=length_scale, mode="wrap")
    n_one = int(round(volume_fraction * size * size))
    image = np.zeros(size * size)
    image[np.argsort(field, axis=None)[::-1][:n_one]] = 1.0
    return image.reshape(size, size)


class RandomFieldPool:
    """``n`` images over the space's volume-fraction × length-scale box (scrambled Sobol), deterministic in the seed."""

    name = "random_field"

    def __init__(self, size: int = 256) -> None:
        self.size = size  # largest pool: each 64×64 image is 4096 numbers in the candidate

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]:
        if not isinstance(space, MicrostructureSpace):
            raise TypeError(f"the random_field pool needs a microstructure space, not {type(space).__name__}")
        n = min(n, self.size)
        if n <= 0:
            return []
        rng = np.random.default_rng(context.seed)
        u = qmc.Sobol(d=2, scramble=True, seed=context.seed).random_base2(max(0, (n - 1).bit_length()))[:n]
        (f0, f1), (l0, l1) = space.volume_fraction, space.length_scale
        out: list[Candidate] = []
        seen = set(context.known_fingerprints)
        for vf, ell in zip(f0 + u[:, 0] * (f1 - f0), l0 + u[:, 1] * (l1 - l0), strict=True):
            image = random_field_image(space.size, float(vf), float(ell), rng)
            cand = Candidate(kind=CandidateKind.IMAGE, image=image.tolist(), origin=self.name)
            if cand.fingerprint not in seen:
                seen.add(cand.fingerprint)
                out.append(cand)
        return out
