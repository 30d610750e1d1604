"""The MatDesINNe pipeline and the ``cinn`` generator built on it.

``MatDesINNe`` = conditional INN + down-selection + localisation (see
:mod:`generators.inverse.cinn`), with a deep-ensemble MLP as the differentiable surrogate
unless the caller supplies one.  ``CINNGenerator`` adapts it to the loop's
``Generator.propose(space, context, n)`` seam for parametric spaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from generators.base import GenerationContext
from generators.inverse.cinn import (
    ConditionalINN,
    FlowTraining,
    TorchRegressor,
    downselect,
    in_bounds,
    localise,
)
from generators.inverse.context import InverseDesignError, measured_pairs, objective, target_value
from generators.inverse.mlp import MLPEnsemble
from matloop.space import CategoricalParameter, IntegerParameter, ParametricSpace
from matloop.types import Candidate, CandidateKind


@dataclass
class Generation:
    """What one call of :meth:`MatDesINNe.generate` produced, with its funnel counts."""

    designs: np.ndarray
    predicted: np.ndarray  # surrogate prediction of each design
    n_sampled: int
    n_in_bounds: int
    n_downselected: int


@dataclass
class MatDesINNe:
    """Fit on measured designs, then :meth:`generate` designs for a target value."""

    bounds: np.ndarray  # (d, 2) box of the design space
    training: FlowTraining = field(default_factory=FlowTraining)
    tolerance: float = 0.1  # down-selection: |surrogate(x) − target| allowed before localisation
    localise_steps: int = 100
    localise_lr: float = 0.01
    surrogate: TorchRegressor | None = None  # differentiable, raw design units → property
    ensemble_members: int = 4
    surrogate_epochs: int = 150
    #: member width: 128 (not the ensemble's default 64) measured 0.062 / 0.026 eV against 0.075 / 0.042 eV on
    #: measured MoS2 rows near 0.5 / 1.0 eV (benchmarks/inverse_validator_floor.py); localisation follows it
    surrogate_hidden: int = 128
    #: members trained on their own bootstrap weights of the rows (``MLPEnsemble.fit(bootstrap=True)``), so
    #: preselection by agreement prefers designs whose prediction does not hinge on which rows were measured:
    #: 3 paired initialisations on MoS2 gave independent MAE 0.024 / 0.017 eV at 0.5 / 1.0 against 0.026 / 0.019
    #: (benchmarks/cinn_variants.py)
    surrogate_bootstrap: bool = True
    #: a second ensemble that only *ranks* designs by its members' agreement (preselection and the final
    #: choice) and is never localised through, so the optimiser cannot make it agree. Its members each see
    #: ``ranking_subsample`` of the rows: they disagree where a prediction hinges on which rows were measured.
    #: None: fitted in :meth:`fit` when ``ranking_members`` > 0; 0 ranks by the surrogate's own spread.
    #: 3 paired initialisations on MoS2 (benchmarks/cinn_variants.py): 8 members gave independent MAE
    #: 0.020 / 0.015 eV at 0.5 / 1.0 against 0.024 / 0.017 ranked by the surrogate's spread (1 thread); 16 gave
    #: 0.018 / 0.013 against 8's 0.021 / 0.016 (2 threads), ~2 s more per 10k designs each time
    ranking: MLPEnsemble | None = None
    ranking_members: int = 16
    ranking_subsample: float = 0.4
    oversample: float = 1.5  # localise this many times n, keep the n the ensemble agrees on most
    max_rounds: int = 8
    spread_weight: float = 0.0  # localisation also minimises this × the ensemble's member variance
    preselect: float = 6.0  # draw this many times the survivors needed; localise the ones the ensemble agrees on

    def fit(self, x: np.ndarray, y: np.ndarray) -> MatDesINNe:
        self.bounds = np.asarray(self.bounds, dtype=np.float64)
        self.flow = ConditionalINN(self.training).fit(x, y)
        if self.surrogate is None:
            self.surrogate = MLPEnsemble(x.shape[1], self.ensemble_members, hidden=self.surrogate_hidden).fit(
                x, y, epochs=self.surrogate_epochs, seed=self.training.seed, bootstrap=self.surrogate_bootstrap
            )
        if self.ranking is None and self.ranking_members > 0:
            with torch.random.fork_rng():  # its own start, without moving the caller's random stream
                torch.manual_seed(self.training.seed + 1)
                self.ranking = MLPEnsemble(x.shape[1], self.ranking_members, hidden=self.surrogate_hidden)
            self.ranking.fit(x, y, epochs=self.surrogate_epochs, seed=self.training.seed + 1,
                             subsample=self.ranking_subsample)
        return self

    def _spread(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Members' disagreement per design, from the ranking ensemble if there is one, else the surrogate's."""
        if self.ranking is not None:
            return self.ranking.spread
        spread = getattr(self.surrogate, "spread", None)
        return spread if callable(spread) else None

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.surrogate is not None
        with torch.no_grad():
            return self.surrogate(torch.as_tensor(x, dtype=torch.float32)).double().numpy()

    def raw_samples(self, target: float, n: int, seed: int = 0) -> np.ndarray:
        """Posterior draws without down-selection or localisation (the ablation)."""
        return self.flow.sample(target, n, seed)

    def generate(self, target: float, n: int, seed: int = 0, *, localise_survivors: bool = True) -> Generation:
        """Sample ``p(x | target)`` in rounds until ``oversample·n`` survive down-selection, localise, keep ``n``."""
        assert self.surrogate is not None, "fit first"
        to_localise = int(np.ceil(self.oversample * n))
        want = int(np.ceil(max(self.preselect, 1.0) * to_localise))
        kept: list[np.ndarray] = []
        n_sampled = n_in = n_kept = 0
        for round_ in range(self.max_rounds):
            batch = max(want, 2 * (want - n_kept))
            draws = self.flow.sample(target, batch, seed=seed * 7919 + round_)
            n_sampled += len(draws)
            n_in += int(in_bounds(draws, self.bounds).sum())
            mask = downselect(draws, self.bounds, self._predict, target, self.tolerance)
            kept.append(draws[mask])
            n_kept += int(mask.sum())
            if n_kept >= want:
                break
        survivors = np.concatenate(kept)[:want] if kept else np.zeros((0, len(self.bounds)))
        spread = self._spread()
        if spread is not None and len(survivors) > to_localise:
            # Sampling is cheap, localisation is not: spend the localisation budget where the members agree.
            survivors = survivors[np.argsort(spread(survivors))[:to_localise]]
        if localise_survivors:
            survivors = localise(survivors, self.surrogate, target, self.bounds, steps=self.localise_steps,
                                 lr=self.localise_lr, spread_weight=self.spread_weight)
        predicted = self._predict(survivors)
        if spread is not None and len(survivors) > n:
            order = np.argsort(spread(survivors))[:n]  # where the ensemble agrees most
        else:
            order = np.argsort(np.abs(predicted - target))[:n]
        return Generation(survivors[order], predicted[order], n_sampled, n_in, n_kept)


class CINNGenerator:
    """``generator: {type: cinn, ...}`` (``generators.config.CINNGenerator``) — MatDesINNe over a parametric space.

    Trains on ``context.extra['measurements']`` each call (campaign data sets are small; a
    generator keeps no campaign state, so a resumed campaign proposes the same designs),
    aims at ``context.target`` and uses ``context.extra['differentiable_surrogate']`` (or
    ``context.surrogate``) for down-selection and localisation when it is a plain
    ``torch.nn.Module`` mapping raw design units to the property (not a BoTorch model);
    otherwise it fits its own MLP ensemble on the measurements.  With no measurements in
    the context, or fewer than ``min_measurements``, there is nothing to invert yet, and it proposes a
    scrambled Sobol design instead (origin ``cinn-coldstart``).  Settings are plain
    numbers so a campaign file can set them; flow settings (``epochs``, ``n_blocks``,
    ``hidden``, ...) are passed to :class:`FlowTraining`.  ``ranking_members: 0`` ranks designs
    by the surrogate's own spread instead of a separate ranking ensemble: farther from the target
    by an independent check, but spread wider over the space (``benchmarks/RESULTS-inverse.md``).
    """

    name = "cinn"

    def __init__(self, tolerance: float | None = None, localise_steps: int = 100, surrogate_epochs: int = 150,
                 max_candidates: int = 2000, min_measurements: int = 16, training: FlowTraining | None = None,
                 ranking_members: int = MatDesINNe.ranking_members, **flow_settings: float) -> None:
        self.training = training or FlowTraining(**flow_settings)  # type: ignore[arg-type]
        self.tolerance = tolerance
        self.localise_steps = localise_steps
        self.surrogate_epochs = surrogate_epochs
        self.max_candidates = max_candidates
        self.min_measurements = min_measurements
        if ranking_members < 0:
            raise InverseDesignError(f"cinn: ranking_members must be 0 (rank by the surrogate) or more, got {ranking_members}")
        self.ranking_members = ranking_members  # 0 trades closeness to target for coverage of the space

    def propose(self, space: ParametricSpace, context: GenerationContext, n: int) -> list[Candidate]:
        if not isinstance(space, ParametricSpace):
            raise InverseDesignError(f"cinn: needs a parametric space, got {type(space).__name__}")
        cats = [p.name for p in space.parameters if isinstance(p, CategoricalParameter)]
        if cats:
            raise InverseDesignError(f"cinn: categorical parameters {cats} are not supported by a continuous flow")
        n = min(n, self.max_candidates)  # every candidate is localised: the loop's 100k pool default is too many
        names = space.names
        # No "measurements" at all = the loop's initial design (no fit yet): same cold start as too few.
        given = context.extra if "measurements" in context.extra else {"measurements": []}
        pairs = [(c, v) for c, v in measured_pairs(given, self.name) if c.kind is CandidateKind.POINT]
        if len(pairs) < self.min_measurements:
            from generators.pool import SobolPool

            cold = SobolPool(size=n).propose(space, context, n)
            return [Candidate.point(c.params or {}, origin=f"{self.name}-coldstart") for c in cold]
        x = np.array([[float(c.params[k]) for k in names] for c, _ in pairs])  # type: ignore[index]
        y = np.array([v for _, v in pairs])
        target = target_value(context.target, y, self.name)
        tolerance = self.tolerance
        if tolerance is None:
            tolerance = float(objective(context.target, self.name).get("tolerance") or 0.1 * max(np.std(y), 1e-6))
        bounds = np.array([p.bounds for p in space.parameters], dtype=np.float64)
        # A BoTorch model is an nn.Module too, but calling it returns a distribution: only a plain
        # regressor (tensor in, tensor out, raw design units) is used for localisation.
        offered = context.extra.get("differentiable_surrogate", context.surrogate)
        surrogate = offered if isinstance(offered, torch.nn.Module) and not hasattr(offered, "posterior") else None
        torch.manual_seed(context.seed)
        pipe = MatDesINNe(bounds, replace(self.training, seed=context.seed), tolerance,
                          self.localise_steps, surrogate=surrogate, surrogate_epochs=self.surrogate_epochs,
                          ranking_members=self.ranking_members)
        pipe.fit(x, y)
        out: list[Candidate] = []
        seen = set(context.known_fingerprints)
        for attempt in range(4):
            gen = pipe.generate(target, 2 * n, seed=context.seed + attempt)
            for row in gen.designs:
                params: dict[str, float | int] = {}
                for p, v in zip(space.parameters, row, strict=True):
                    params[p.name] = int(round(v)) if isinstance(p, IntegerParameter) else float(v)
                if space.violations(params):
                    continue  # simplex/linear constraints the box-projected localisation cannot see
                cand = Candidate.point(params, origin=self.name)
                if cand.fingerprint in seen:
                    continue
                seen.add(cand.fingerprint)
                out.append(cand)
                if len(out) == n:
                    return out
        return out
