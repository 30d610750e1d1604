"""Exact sequential-greedy q-batch on the survivors, from one joint posterior sample set.

BoTorch's MC acquisitions (qLogNEI, qUCB, qSimpleRegret) are expectations over joint posterior samples of the
batch, the pending points and (for NEI) the incumbent set, estimated with fixed quasi-MC base samples.
``optimize_acqf_discrete`` re-draws that joint posterior for every candidate at every greedy step, which is what
makes it slow (the issue measured ~10 s for q=8 from 20,000 rows). Here the joint posterior over
*survivors + pending + incumbents* is computed once and sampled once with the same Sobol QMC sampler; every
greedy step then only reduces a ``samples x survivors`` table. The estimator is the same MC estimator BoTorch
uses (common random numbers across candidates), with BoTorch's own smoothing constants: the q-batch maximum of the
log acquisitions is BoTorch's ``smooth_amax`` (``tau_max``), and qLogNEI is *incremental* as BoTorch's is (pending
points and earlier picks join the incumbent set rather than the batch). Given the same samples, every value the
greedy computes is the value BoTorch's acquisition returns and the batch is the one ``optimize_acqf_discrete``
returns; ``tests/selection/test_botorch_equivalence.py`` pins this for qLogEI, qLogNEI, qUCB and the band
probability, at q = 1 and at q = 8 over 200 rows.

What is still ours, and why: one joint sample set for all survivors instead of BoTorch's fresh posterior per
candidate and greedy step (that is the speed-up: ~10 s -> ~0.1 s for q = 8); qLogNEI's incumbent set is the
``INCUMBENTS`` observed points with the best posterior mean (BoTorch's ``prune_baseline`` prunes by sampling); a
posterior sample in which no incumbent is feasible takes the sample's lowest objective as its incumbent (BoTorch
estimates a lower bound from random points); qUCB's infeasible cost is the survivors' 6-sigma lower bound
(BoTorch's ``get_infeasible_cost`` takes it at the observed points).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from botorch.posteriors import PosteriorList
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.safe_math import log_softplus, logexpit, logmeanexp
from torch import Tensor

from agent.selection.objectives import ObjectiveMap, band_indicator

#: Sharpness of the smoothed feasibility indicator (BoTorch's default ``eta`` for outcome constraints).
CONSTRAINT_ETA = 1e-3
#: Temperature of the smoothed ReLU in log-improvement (BoTorch's ``tau_relu``).
TAU_RELU = 1e-6
#: Temperature of the smooth maximum over the q-batch of the log acquisitions (BoTorch's ``tau_max``).
TAU_MAX = 1e-2
#: How many observed points enter the incumbent set of NEI (the best by posterior mean utility).
INCUMBENTS = 128


@dataclass
class SampleTable:
    """Per-sample scores ``h`` (``samples x rows``) and how a column maximum over the batch is averaged.

    ``rescore`` (qLogNEI only) gives the scores of the first ``n`` columns again with the given columns added to the
    incumbent set: BoTorch's incremental NEI scores each new point alone against ``max(incumbents, pending, earlier
    picks)``, so its greedy does not take a batch maximum at all.
    """

    h: Tensor
    reduce: Callable[[Tensor], Tensor]
    log: bool
    rescore: Callable[[list[int], int], Tensor] | None = None

    def batch_max(self, a: Tensor, b: Tensor) -> Tensor:
        """The q-batch maximum BoTorch takes: ``smooth_amax`` (``tau_max``) for log acquisitions, else ``amax``."""
        if self.log:
            return TAU_MAX * torch.logaddexp(a / TAU_MAX, b / TAU_MAX)
        return torch.maximum(a, b)


def joint_samples(model, X: Tensor, n_samples: int, seed: int) -> Tensor:
    """``n_samples x len(X) x m`` quasi-MC samples of the joint posterior at ``X``.

    A ``ModelListGP`` (one independent model per property, as a campaign with a target
    and a constraint fits) returns a ``PosteriorList``, which has no single base-sample
    shape: each output is sampled by its own Sobol sampler (seeds ``seed, seed + 1, ...``,
    as BoTorch's ``ListSampler`` does) and the outputs are stacked.  The outputs are
    independent, so this is the same joint distribution.
    """
    with torch.no_grad():
        posterior = model.posterior(X)
        if isinstance(posterior, PosteriorList):
            parts = [
                _as_3d(SobolQMCNormalSampler(sample_shape=torch.Size([n_samples]), seed=seed + i)(p))
                for i, p in enumerate(posterior.posteriors)
            ]
            return torch.cat(parts, dim=-1)
        Z = SobolQMCNormalSampler(sample_shape=torch.Size([n_samples]), seed=seed)(posterior)
    return _as_3d(Z)


def _as_3d(Z: Tensor) -> Tensor:
    return Z if Z.ndim == 3 else Z.unsqueeze(-1)


def _log_feasibility(omap: ObjectiveMap, Z: Tensor) -> Tensor:
    """Log of the smoothed feasibility indicator, as BoTorch's ``compute_smoothed_feasibility_indicator``."""
    out = torch.zeros(Z.shape[:-1], dtype=Z.dtype)
    for con in omap.constraint_callables():
        out = out + logexpit(-con(Z) / CONSTRAINT_ETA)
    return out


def nei_table(omap: ObjectiveMap, Z: Tensor, incumbents: slice) -> SampleTable:
    """qLogNEI: ``log E[feas_j * relu(f_j - max_feasible_incumbent f)]`` (smoothed as BoTorch does), incremental.

    The incumbent of each sample is the best objective among the incumbent columns that meet every outcome
    constraint in that sample (BoTorch's ``compute_best_feasible_objective``); ``rescore`` adds columns (pending
    points, earlier picks) to that set.
    """
    f = omap.scalar_objective()(Z)
    log_feas = _log_feasibility(omap, Z)
    feasible = torch.ones(f.shape, dtype=torch.bool)  # every constraint <= 0: BoTorch's hard feasibility
    for con in omap.constraint_callables():
        feasible &= con(Z) <= 0
    base = f[:, incumbents].masked_fill(~feasible[:, incumbents], -float("inf")).amax(dim=-1, keepdim=True)
    lowest = f.amin(dim=-1, keepdim=True)

    last: dict[int, tuple[Tensor, Tensor]] = {}  # n -> (best, scores): only samples whose incumbent rose change

    def rescore(extra: list[int], n: int) -> Tensor:
        best = base
        if extra:
            more = f[:, extra].masked_fill(~feasible[:, extra], -float("inf")).amax(dim=-1, keepdim=True)
            best = torch.maximum(best, more)
        best = torch.where(torch.isfinite(best), best, lowest)
        if n in last:
            previous, h = last[n]
            changed = (best != previous).squeeze(-1)
            if bool(changed.any()):
                h = h.clone()
                h[changed] = log_softplus(f[changed, :n] - best[changed], tau=TAU_RELU) + log_feas[changed, :n]
        else:
            h = log_softplus(f[:, :n] - best, tau=TAU_RELU) + log_feas[:, :n]
        last[n] = (best, h)
        return h

    return SampleTable(h=rescore([], f.shape[-1]), reduce=lambda v: logmeanexp(v, dim=0), log=True, rescore=rescore)


def ucb_table(omap: ObjectiveMap, Z: Tensor, beta: float, infeasible_cost: float) -> SampleTable:
    """qUCB (BoTorch's MC form): ``E[max_j mu_j + sqrt(beta pi / 2) |f_j - mu_j|]``, failures worth the floor."""
    f = omap.scalar_objective()(Z)
    if omap.constraints:
        feas = _log_feasibility(omap, Z).exp()
        f = (f + infeasible_cost).clamp_min(0) * feas - infeasible_cost  # BoTorch's ``apply_constraints``
    mu = f.mean(dim=0, keepdim=True)
    h = mu + math.sqrt(beta * math.pi / 2) * (f - mu).abs()
    return SampleTable(h=h, reduce=lambda v: v.mean(dim=0), log=False)


def band_table(omap: ObjectiveMap, Z: Tensor) -> SampleTable:
    """Target band: ``P(at least one pick lands in the band and meets the constraints)``."""
    o, col = omap.objectives[0], omap.objective_columns[0]
    assert o.target is not None and o.tolerance is not None
    h = band_indicator(Z[..., col], o.target, o.tolerance) * _log_feasibility(omap, Z).exp()
    return SampleTable(h=h, reduce=lambda v: v.mean(dim=0), log=False)


def greedy_from_table(
    table: SampleTable,
    n_candidates: int,
    q: int,
    pending: slice | None,
    log_success: Tensor | None = None,
    floor: float = 0.0,
    first: Sequence[int] = (),
) -> tuple[list[int], list[float]]:
    """Greedy batch over the first ``n_candidates`` columns; ``pending`` columns count as already chosen.

    Each step is one step of ``optimize_acqf_discrete``: every free candidate is scored as a q=1 batch with the
    pending columns and the earlier picks as BoTorch's ``X_pending`` (in the batch's maximum, or for qLogNEI in the
    incumbent set), and the best is taken.

    ``first`` (candidate positions) are taken as the batch's first picks whatever their acquisition value (the
    exploitation share of :func:`agent.selection.discrete.select_batch`); the greedy then conditions on them as
    on any earlier pick, and each gets the marginal value it adds, so the stored values stay comparable.

    ``log_success`` (per candidate) is the learnt log-probability that the experiment succeeds: added to log
    acquisitions; for the others a failure is worth ``floor``: ``p * value + (1 - p) * floor``, as
    :class:`~agent.selection.acquisition.FeasibilityWeighted`.
    """
    h = table.h
    s = h.shape[0]
    chosen_cols: list[int] = [] if pending is None else list(range(pending.start, pending.stop))
    current = torch.full((s, 1), -float("inf"), dtype=h.dtype)
    if table.rescore is None:
        for col in chosen_cols:
            current = table.batch_max(current, h[:, col : col + 1])
    free = torch.ones(n_candidates, dtype=torch.bool)
    order: list[int] = []
    values: list[float] = []
    forced = [int(j) for j in first][:q]
    for step in range(min(q, n_candidates)):
        if table.rescore is not None:
            vals = table.reduce(table.rescore(chosen_cols, n_candidates))
        else:
            vals = table.reduce(table.batch_max(h[:, :n_candidates], current))
        if log_success is not None:
            p = log_success.exp()
            vals = vals + log_success if table.log else p * vals + (1 - p) * floor
        vals = torch.nan_to_num(vals, nan=-float("inf")).masked_fill(~free, -float("inf"))
        j = forced[step] if step < len(forced) else int(torch.argmax(vals))
        if not free[j]:
            break
        order.append(j)
        values.append(float(vals[j]))
        free[j] = False
        chosen_cols.append(j)
        if table.rescore is None:
            current = table.batch_max(current, h[:, j : j + 1])
    return order, values
