"""The ``janus`` generator: latent-space inverse design of two-phase microstructure images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from generators.base import GenerationContext
from generators.inverse.context import InverseDesignError, measured_pairs, target_value
from generators.inverse.image_regressor import ImageEnsembleTraining, train_image_ensemble
from generators.inverse.images import RandomFieldPool
from generators.inverse.janus import Inversion, JanusModel, JanusTraining, design, train_janus
from matloop.space import MicrostructureSpace
from matloop.types import Candidate, CandidateKind


class JanusGenerator:
    """``generator: {type: janus}`` (``generators.config.JanusGenerator``) — decode latents descended toward the target.

    Learns from the campaign's measured images (``context.extra['measurements']``), or uses a
    pre-trained :class:`JanusModel` given at construction (a model trained on a simulated
    library transfers to a campaign that has measured only a few images).  The design
    space is not inspected beyond its optional ``size``, so any space whose images match the
    measured ones is accepted; with a :class:`MicrostructureSpace` and fewer than
    ``min_measurements`` measured images it cold-starts with random-field images.

    ``score_model`` (settings of :class:`ImageEnsembleTraining`, e.g. ``{physics_prior: true,
    k0: 1, k1: 10}``; off by default): also train the CNN ensemble of
    :mod:`~generators.inverse.image_regressor` on the measured binary images and let it choose each
    decoded design's threshold and the designs (``design(score_model=...)``). The Janus head reads
    the latent code and misses the physics of the thresholded image by 1-3 %; the ensemble reads the
    binary image itself (in the benchmark, with the coarse-grid prior: 95-100 % of targets within
    1 % against 15 % for the head; ``benchmarks/RESULTS-inverse.md``). ``physics_prior`` assumes the
    property is a two-phase conductivity with phase values ``k0`` and ``k1``; without it the ensemble
    learns ``log`` of any positive property from the images alone.
    """

    name = "janus"

    def __init__(self, model: JanusModel | None = None, training: JanusTraining | dict | None = None,
                 inversion: Inversion | dict | None = None, max_candidates: int = 64,
                 min_measurements: int = 8, score_model: ImageEnsembleTraining | dict | None = None) -> None:
        self.model = model
        self.score_training = (ImageEnsembleTraining(**score_model) if isinstance(score_model, dict)
                               else score_model)
        self.training = JanusTraining(**training) if isinstance(training, dict) else training or JanusTraining()
        self.inversion = Inversion(**inversion) if isinstance(inversion, dict) else inversion or Inversion()
        self.max_candidates = max_candidates  # each candidate is one latent descent
        self.min_measurements = min_measurements

    def propose(self, space: object, context: GenerationContext, n: int) -> list[Candidate]:
        # No "measurements" at all = the loop's initial design: with a microstructure space (and no
        # pre-trained model) there is nothing to invert yet, so draw random-field images, as cinn draws Sobol.
        cold_startable = self.model is None and isinstance(space, MicrostructureSpace)
        given = context.extra if "measurements" in context.extra or not cold_startable else {"measurements": []}
        pairs = [(c, v) for c, v in measured_pairs(given, self.name) if c.kind is CandidateKind.IMAGE]
        if cold_startable and len(pairs) < self.min_measurements:
            cold = RandomFieldPool().propose(space, context, n)
            return [c.model_copy(update={"origin": f"{self.name}-coldstart"}) for c in cold]
        n = min(n, self.max_candidates)
        if not pairs:
            raise InverseDesignError("janus: no measured image candidates in context.extra['measurements']")
        images = np.array([c.image for c, _ in pairs], dtype=np.float32)
        values = np.array([v for _, v in pairs])
        size = getattr(space, "size", None)
        if size is not None and images.shape[1:] != (size, size):
            raise InverseDesignError(f"janus: measured images are {images.shape[1:]}, the space says {size}×{size}")
        target = target_value(context.target, values, self.name)
        torch.manual_seed(context.seed)
        model = self.model
        if model is None:
            model, _ = train_janus(images, values, replace(self.training, seed=context.seed))
        cfg = replace(self.inversion, n_starts=max(self.inversion.n_starts, 2 * n))
        scorer = None
        if self.score_training is not None:
            scorer, _ = train_image_ensemble(images, values, replace(self.score_training, seed=context.seed))
        designs, _ = design(model, target, images, values, n=cfg.n_starts, cfg=cfg, score_model=scorer)
        out: list[Candidate] = []
        seen = set(context.known_fingerprints)
        for img in designs:
            cand = Candidate(kind=CandidateKind.IMAGE, image=img.tolist(), origin=self.name)
            if cand.fingerprint not in seen:
                seen.add(cand.fingerprint)
                out.append(cand)
            if len(out) == n:
                break
        return out
