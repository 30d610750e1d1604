"""Which acquisition a campaign's objectives get, and the BoTorch object for the hypervolume one.

Choices (each the standard of the field, so results are comparable to published BO work; all but the
hypervolume one are evaluated on one joint sample table, :mod:`agent.selection.exact`, whose values are BoTorch's):

* one objective, maximise/minimise: ``qlogei`` (the default that ``auto`` picks: qLogExpectedImprovement over
  the best posterior mean among measured points; why it beats qLogNEI here is in
  :mod:`agent.selection.improvement`; in a batch of five to eight ``auto`` hands the picks after the fourth to
  Thompson sampling, why is in :mod:`agent.selection.discrete`), ``qlognei`` (qLogNoisyExpectedImprovement, the
  incumbent drawn from the posterior at the measured points), ``ucb`` (qUpperConfidenceBound), or ``thompson``
  (handled in the discrete selector: one joint posterior sample per pick);
* one objective, target band ``t ± tol``: the probability that at least one pick of the batch lands in the
  band, ``E[max_j 1{|y_j - t| <= tol}]`` (qSimpleRegret on a soft in-band indicator). This is what the
  scientist asked for ("find a material in the band"), it does not chase points that overshoot the band
  as EI on ``-|y - t|`` would, and for batches it rewards covering different ways into the band;
* several objectives: qLogNoisyExpectedHypervolumeImprovement with a reference point (``Objective.reference``
  or inferred from the observed Pareto front).

Outcome constraints are BoTorch constraint callables (sigmoid-weighted feasibility); a feasibility model learnt
from failed experiments multiplies the acquisition by the probability of success.
"""

from __future__ import annotations

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.sampling import SobolQMCNormalSampler
from torch import Tensor

from agent.selection.feasibility import FeasibilityModel
from agent.selection.objectives import ObjectiveMap
from agent.spec.acquisition import check_acquisition

#: Exploration weight of UCB (BoTorch's beta multiplies the variance: sqrt(beta) = 2 standard deviations).
UCB_BETA = 4.0


def resolve_acquisition(name: str, omap: ObjectiveMap) -> str:
    """The acquisition actually used: several objectives -> qlognehvi; a target band -> band (unless Thompson);
    ``auto`` -> qlogei for one objective to maximise or minimise."""
    name = check_acquisition(name, omap.objectives)
    if name == "auto":
        name = "qlogei"
    if omap.is_multi:
        return "thompson" if name == "thompson" else "qlognehvi"
    if omap.has_target and name in ("qlogei", "qlognei", "ucb"):
        return "band"
    return name


def build_acquisition(
    name: str,
    model,
    omap: ObjectiveMap,
    *,
    X_observed: Tensor,
    Y_observed: Tensor,
    X_pending: Tensor | None,
    seed: int,
    mc_samples: int = 128,
) -> AcquisitionFunction:
    """BoTorch's acquisition object for ``name``: only ``qlognehvi``, whose box decompositions do not reduce to one
    sample table. qLogEI, qLogNEI, qUCB and the band probability are evaluated on one joint sample table
    (:mod:`agent.selection.exact`), pinned to BoTorch's objects by ``tests/selection/test_botorch_equivalence.py``.
    """
    if name != "qlognehvi":
        raise ValueError(f"build_acquisition builds qlognehvi only, not {name!r} (see agent.selection.exact)")
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    return qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=omap.reference_point(Y_observed).tolist(), X_baseline=X_observed,
        sampler=sampler, objective=omap.multi_objective(), constraints=omap.constraint_callables() or None,
        X_pending=X_pending, prune_baseline=True,
    )


def is_log_acquisition(name: str) -> bool:
    return name in ("qlogei", "qlognei", "qlognehvi")


class FeasibilityWeighted(AcquisitionFunction):
    """Acquisition times the probability that every point of the q-batch succeeds (``+ log p`` for log ones).

    For UCB, whose values may be negative, a failure is scored as the infeasible cost:
    ``p * a + (1 - p) * floor``.
    """

    def __init__(self, base: AcquisitionFunction, feasibility: FeasibilityModel, log: bool, floor: float = 0.0):
        super().__init__(model=base.model)
        self.base = base
        self.feasibility = feasibility
        self.log = log
        self.floor = floor

    def set_X_pending(self, X_pending: Tensor | None = None) -> None:
        self.base.set_X_pending(X_pending)

    def forward(self, X: Tensor) -> Tensor:
        value = self.base(X)
        p = self.feasibility.probability(X).clamp_min(1e-12).prod(dim=-1)
        if self.log:
            return value + torch.log(p)
        return p * value + (1 - p) * self.floor
