"""Build the BoTorch acquisition function for a campaign's objectives.

Choices (each the standard of the field, so results are comparable to published BO work):

* one objective, maximise/minimise: ``qlogei`` (the default that ``auto`` picks: qLogExpectedImprovement over
  the best posterior mean among measured points; why it beats qLogNEI here is in
  :mod:`agent.selection.improvement`), ``qlognei`` (qLogNoisyExpectedImprovement, the incumbent drawn from the
  posterior at the measured points), ``ucb`` (qUpperConfidenceBound), or ``thompson`` (handled in the discrete
  selector: one joint posterior sample per pick);
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
from botorch.acquisition import AcquisitionFunction, qSimpleRegret, qUpperConfidenceBound
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.objective import ConstrainedMCObjective
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


def _constrained(omap: ObjectiveMap, infeasible_cost: float | Tensor = 0.0):
    objective = omap.scalar_objective()
    if not omap.constraints:
        return objective
    return ConstrainedMCObjective(
        objective=lambda Z, X=None: objective(Z, X), constraints=omap.constraint_callables(),
        infeasible_cost=infeasible_cost,
    )


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
    """The acquisition function ``name`` (already resolved) over ``model``; not for ``thompson``."""
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    constraints = omap.constraint_callables() or None
    if name == "qlognehvi":
        return qLogNoisyExpectedHypervolumeImprovement(
            model=model, ref_point=omap.reference_point(Y_observed).tolist(), X_baseline=X_observed,
            sampler=sampler, objective=omap.multi_objective(), constraints=constraints, X_pending=X_pending,
            prune_baseline=True,
        )
    if name == "qlogei":
        from agent.selection.improvement import plugin_incumbent

        return qLogExpectedImprovement(
            model=model, best_f=plugin_incumbent(model, omap, X_observed), sampler=sampler,
            objective=omap.scalar_objective(), constraints=constraints, X_pending=X_pending,
        )
    if name == "qlognei":
        return qLogNoisyExpectedImprovement(
            model=model, X_baseline=X_observed, sampler=sampler, objective=omap.scalar_objective(),
            constraints=constraints, X_pending=X_pending, prune_baseline=True,
        )
    if name == "band":
        return qSimpleRegret(model=model, sampler=sampler, objective=_constrained(omap, 0.0), X_pending=X_pending)
    if name == "ucb":
        cost = 0.0
        if omap.constraints:
            from botorch.acquisition.utils import get_infeasible_cost

            cost = get_infeasible_cost(X=X_observed, model=model, objective=omap.scalar_objective())
        return qUpperConfidenceBound(
            model=model, beta=UCB_BETA, sampler=sampler, objective=_constrained(omap, cost), X_pending=X_pending,
        )
    raise ValueError(f"build_acquisition cannot build {name!r}")


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
