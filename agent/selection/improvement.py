"""qLogEI with the plug-in incumbent: improvement over the best *posterior mean* among the measured points.

Why this is the default for one objective, not qLogNEI. Noisy EI (Letham et al. 2019) takes, in every
posterior sample, the maximum of ``f`` over the observed points as the incumbent. With dozens of observed points
near the best and a posterior std at each of them, that sample maximum sits well above the best posterior mean
(it grows like ``std * sqrt(2 log k)`` for ``k`` near-equal points), so improvement looks possible only where the
posterior is very uncertain: the batch drifts to exploration just when the campaign should refine around its
best region. The plug-in incumbent (Picheny et al. 2013 found it among the most robust noisy-EI variants; it is
BayBE's and Ax's legacy default) does not inflate. In the pool replay on the OER plates and the perovskites it
found the best candidates sooner than qLogNEI with the same GP (``benchmarks/RESULTS-selection.md``).

The estimator is BoTorch's ``qLogExpectedImprovement(fat=False)`` with ``best_f`` = this incumbent (smoothed
log-ReLU, constraint feasibility as sigmoid weights, ``smooth_amax`` over the batch), reduced over one joint sample
table so that the sequential greedy batch costs one joint posterior (:mod:`agent.selection.exact`). What is ours is
the incumbent (above) and the shared sample table (speed); on the same samples the values and the greedy batch are
BoTorch's (``tests/selection/test_botorch_equivalence.py``).
"""

from __future__ import annotations

import torch
from botorch.utils.safe_math import log_softplus, logmeanexp
from torch import Tensor

from agent.selection.exact import TAU_RELU, SampleTable, _log_feasibility
from agent.selection.objectives import ObjectiveMap
from agent.selection.screening import feasibility_probability, posterior_moments


def plugin_incumbent(model, omap: ObjectiveMap, X_observed: Tensor) -> float:
    """Best posterior-mean utility among observed points likely (p >= 0.5) to meet the outcome constraints.

    When none is likely feasible, the lowest mean utility: any feasible pick then counts as an improvement,
    which is what BoTorch's constrained EI does without a feasible incumbent.
    """
    mean, std = posterior_moments(model, X_observed)
    utility = omap.utility(mean[:, omap.objective_columns[0]])
    feasible = feasibility_probability(omap, mean, std) >= 0.5
    if bool(feasible.any()):
        return float(utility[feasible].max())
    return float(utility.min())


def ei_table(omap: ObjectiveMap, Z: Tensor, best: float) -> SampleTable:
    """qLogEI per sample: ``log(feas_j * softplus(f_j - best))``; the batch value is ``log E[max_j ...]``."""
    f = omap.scalar_objective()(Z)
    h = log_softplus(f - torch.as_tensor(best, dtype=f.dtype), tau=TAU_RELU) + _log_feasibility(omap, Z)
    return SampleTable(h=h, reduce=lambda v: logmeanexp(v, dim=0), log=True)
