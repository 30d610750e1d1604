"""Choose a q-batch from a discrete candidate pool (pools up to 10^6 rows).

Three stages, each doing only the work it must:

1. **Eligibility** — drop rows already measured, in flight (pending), excluded by the caller, or duplicates of
   an earlier row, so no candidate is ever picked twice.
2. **Pre-screen** — marginal posterior moments of every eligible row, in chunks with LOVE fast variances,
   and an optimistic score that keeps a few hundred survivors (:mod:`agent.selection.screening`).
3. **Exact batch** — sequential greedy on the survivors with the real q-batch acquisition: each pick maximises
   the acquisition with the earlier picks (and the caller's pending jobs) as pending points, exactly as
   BoTorch's ``optimize_acqf_discrete`` does, but only over survivors. With ``acquisition: auto`` and one
   objective, a batch of five to eight (``AUTO_THOMPSON_MAX_BATCH``) ends in batch Thompson samples after its
   first ``AUTO_GREEDY_PICKS`` picks.

Why batches of five to eight end in Thompson samples: measured, not derived. In the pool replay on the
development problems, q=8 batches of pure qLogEI missed the best of two needle-like OER plates within 150
experiments in 7 of 10 seeds each; four qLogEI picks plus four Thompson samples (each pick the maximiser of one
joint posterior draw, so a region gets picks in proportion to its probability of holding the optimum: Kandasamy et
al. 2018, Hernández-Lobato et al. 2017) missed them in 4 of 10 and needed about as many experiments elsewhere on
average. At q=4 pure qLogEI was better than two picks of each, and at q=16 better than a Thompson tail of twelve or
of eight picks (``benchmarks/RESULTS-selection.md``). So the tail is applied only to batches of five to eight. Why it
stops helping above eight is not known. An explicit ``acquisition: qlogei`` keeps every pick qLogEI's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gpytorch
import torch
from torch import Tensor

from agent.selection.acquisition import (
    UCB_BETA,
    FeasibilityWeighted,
    build_acquisition,
    is_log_acquisition,
    resolve_acquisition,
)
from agent.selection.exact import INCUMBENTS, band_table, greedy_from_table, joint_samples, nei_table, ucb_table
from agent.selection.feasibility import FeasibilityModel
from agent.selection.improvement import ei_table, plugin_incumbent
from agent.selection.objectives import ObjectiveMap
from agent.selection.picks import Pick, as_dicts, explain
from agent.selection.screening import available_rows, feasibility_probability, posterior_moments, prescreen
from agent.spec.acquisition import GREEDY_SHARE_ACQUISITIONS
from agent.spec.objectives import Objective, OutcomeConstraint

#: With ``acquisition: auto`` (qLogEI for one objective), how many picks of a batch are qLogEI's greedy; the rest
#: are batch Thompson samples, in batches of at most ``AUTO_THOMPSON_MAX_BATCH`` (see the module docstring).
AUTO_GREEDY_PICKS = 4
AUTO_THOMPSON_MAX_BATCH = 8

#: Survivors of the pre-screen: at least this many, and at least SURVIVORS_PER_PICK per batch slot.
SURVIVORS_MIN = 384
SURVIVORS_PER_PICK = 24
EVAL_CHUNK = 512
#: Hypervolume acquisitions cost far more per evaluation (box decompositions per sample): fewer survivors,
#: smaller evaluation chunks.
SURVIVORS_MULTI = 64
MULTI_CHUNK = 32
#: Quasi-MC samples of the joint posterior: BoTorch's default (512) for the one-table acquisitions, whose greedy
#: costs only a reduction per step; 128 for hypervolume acquisitions, which pay a box decomposition per sample.
MC_SAMPLES = 512
MC_SAMPLES_MULTI = 128


def _check_inputs(X_pool: Tensor, X_observed: Tensor, Y_observed: Tensor, properties: Sequence[str], q: int) -> None:
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    if X_pool.ndim != 2:
        raise ValueError(f"X_pool must be (n_candidates x n_features), got shape {tuple(X_pool.shape)}")
    if X_observed.ndim != 2 or X_observed.shape[-1] != X_pool.shape[-1]:
        raise ValueError(
            f"X_observed must be (n x {X_pool.shape[-1]}) like X_pool, got shape {tuple(X_observed.shape)}"
        )
    if Y_observed.shape != (X_observed.shape[0], len(properties)):
        raise ValueError(
            f"Y_observed must be (n_observed x len(properties)) = ({X_observed.shape[0]} x {len(properties)}), "
            f"got {tuple(Y_observed.shape)}"
        )


def _greedy(acq, X: Tensor, q: int, X_pending: Tensor | None, chunk: int = EVAL_CHUNK) -> tuple[list[int], list[float]]:
    """Sequential greedy q-batch over the rows of ``X``; returns positions and marginal acquisition values."""
    free = torch.ones(len(X), dtype=torch.bool)
    order: list[int] = []
    values: list[float] = []
    for _ in range(min(q, len(X))):
        vals = torch.cat([acq(X[s : s + chunk].unsqueeze(-2)) for s in range(0, len(X), chunk)])
        vals = torch.nan_to_num(vals, nan=-float("inf")).masked_fill(~free, -float("inf"))
        j = int(torch.argmax(vals))
        if not free[j]:
            break
        order.append(j)
        values.append(float(vals[j]))
        free[j] = False
        chosen = X[order]
        acq.set_X_pending(chosen if X_pending is None else torch.cat([X_pending, chosen]))
    return order, values


def _thompson(
    model, omap: ObjectiveMap, X: Tensor, q: int, seed: int, feasibility: FeasibilityModel | None,
    taken: Sequence[int] = (),
) -> tuple[list[int], list[float]]:
    """Batch Thompson sampling: pick ``j`` maximises the ``j``-th joint posterior sample over the survivors
    not in ``taken`` (positions already picked for the batch).

    Outcome constraints and learnt feasibility act per sample (an infeasible or failed draw is worth nothing);
    several objectives are scalarised by a random Chebyshev weight per sample (ParEGO-style).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        Z = model.posterior(X).rsample(torch.Size([q]))  # q x n x m
        if Z.ndim == 2:
            Z = Z.unsqueeze(-1)
        if omap.is_multi:
            U = omap.multi_objective()(Z)
            lo, hi = U.amin(dim=-2, keepdim=True), U.amax(dim=-2, keepdim=True)
            U = (U - lo) / (hi - lo).clamp_min(1e-12)
            w = -torch.log(torch.rand(q, 1, U.shape[-1]))
            util = (U * (w / w.sum(-1, keepdim=True))).min(-1).values
        else:
            util = omap.scalar_objective()(Z)
        for con in omap.constraint_callables():
            util = util.masked_fill(con(Z) > 0, -float("inf"))
        if feasibility is not None:
            fails = torch.rand(q, len(X)) > feasibility.probability(X).unsqueeze(0)
            util = util.masked_fill(fails, -float("inf"))
    free = torch.ones(len(X), dtype=torch.bool)
    free[list(taken)] = False
    order, values = [], []
    for i in range(min(q, int(free.sum()))):
        u = util[i].masked_fill(~free, -float("inf"))
        j = int(torch.argmax(u))
        if not free[j]:
            break
        order.append(j)
        values.append(float(u[j]))
        free[j] = False
    return order, values


def _exact_moments(model, X: Tensor) -> tuple[Tensor, Tensor]:
    """Exact marginal posterior of the few picked rows (the pre-screen's variances are deliberately loose)."""
    with torch.no_grad():
        post = model.posterior(X.unsqueeze(-2))
        return post.mean.squeeze(-2), post.variance.squeeze(-2).clamp_min(0).sqrt()


def _incumbents(model, omap: ObjectiveMap, X_observed: Tensor) -> Tensor:
    """The observed points most likely to hold the incumbent: best posterior-mean utility among the likely feasible.

    NEI's incumbent is the best *feasible* value among observed points in each posterior sample; points whose
    mean is far below the best hardly ever attain that maximum, so keeping the top ``INCUMBENTS`` changes the
    estimate negligibly while keeping the joint posterior small (BoTorch's ``prune_baseline`` does the same
    by sampling).
    """
    if len(X_observed) <= INCUMBENTS:
        return X_observed
    mean, std = posterior_moments(model, X_observed)
    utility = omap.utility(mean[:, omap.objective_columns[0]])
    utility = utility.masked_fill(feasibility_probability(omap, mean, std) < 0.5, -float("inf"))
    if torch.isinf(utility).all():
        utility = omap.utility(mean[:, omap.objective_columns[0]])
    return X_observed[torch.topk(utility, INCUMBENTS).indices]


def _sample_greedy(
    name: str,
    model,
    omap: ObjectiveMap,
    X_surv: Tensor,
    X_pending: Tensor | None,
    X_observed: Tensor,
    q: int,
    seed: int,
    mc_samples: int,
    feasibility_model: FeasibilityModel | None,
    surv_mean: Tensor,
    surv_std: Tensor,
    n_exploit: int = 0,
) -> tuple[list[int], list[float], int]:
    """qLogEI / qLogNEI / qUCB / band probability, greedy over one joint sample table (:mod:`agent.selection.exact`).

    The first ``n_exploit`` picks are the survivors with the best posterior-mean utility (``exploit_share``);
    the third value says how many there were.
    """
    n_s = len(X_surv)
    n_p = 0 if X_pending is None else len(X_pending)
    parts = [X_surv] + ([X_pending] if n_p else [])
    incumbents = _incumbents(model, omap, X_observed) if name == "qlognei" else X_observed[:0]
    parts.append(incumbents)
    Z = joint_samples(model, torch.cat(parts), mc_samples, seed)
    pending = slice(n_s, n_s + n_p) if n_p else None
    floor = 0.0
    if name == "qlogei":
        table = ei_table(omap, Z, plugin_incumbent(model, omap, X_observed))
    elif name == "qlognei":
        table = nei_table(omap, Z, slice(n_s + n_p, n_s + n_p + len(incumbents)))
    elif name == "ucb":
        col = omap.objective_columns[0]
        low = omap.utility(surv_mean[:, col]) - 6 * surv_std[:, col]
        cost = float((-low.min()).clamp_min(0))
        table = ucb_table(omap, Z, UCB_BETA, infeasible_cost=cost)
        floor = -cost
    else:
        table = band_table(omap, Z)
    log_success = None
    if feasibility_model is not None:
        with torch.no_grad():
            log_success = feasibility_model.probability(X_surv).clamp_min(1e-12).log()
    first = _best_mean(omap, surv_mean, surv_std, log_success, n_exploit) if n_exploit else []
    order, values = greedy_from_table(table, n_s, q, pending, log_success, floor, first=first)
    return order, values, len(first)


def _best_mean(omap: ObjectiveMap, mean: Tensor, std: Tensor, log_success: Tensor | None, k: int) -> list[int]:
    """Positions of the ``k`` rows with the best posterior-mean utility among those likely to be feasible
    (outcome constraints and learnt success both at least 1/2); none when no row is."""
    utility = omap.utility(mean[:, omap.objective_columns[0]]).clone()
    likely = feasibility_probability(omap, mean, std) >= 0.5
    if log_success is not None:
        likely &= log_success >= math.log(0.5)
    utility = utility.masked_fill(~likely, -float("inf"))
    k = min(k, int(likely.sum()))
    return torch.topk(utility, k).indices.tolist() if k else []


def _reason(rank: int, n_exploit: int, n_thompson_from: int, name: str) -> str:
    """What chose the pick at ``rank``: the exploitation share, the acquisition, or the batch's Thompson tail."""
    if rank < n_exploit:
        return "posterior mean: "
    return "thompson: " if rank >= n_thompson_from else f"{name}: "


def select_batch(
    model,
    X_pool: Tensor,
    *,
    objectives: Sequence[Objective],
    constraints: Sequence[OutcomeConstraint] | None = None,
    properties: Sequence[str],
    q: int,
    X_observed: Tensor,
    Y_observed: Tensor,
    X_pending: Tensor | None = None,
    acquisition: str = "auto",
    seed: int = 0,
    feasibility_model: FeasibilityModel | None = None,
    exploit_share: float = 0.0,
) -> list[Pick]:
    """Choose up to ``q`` rows of ``X_pool`` (features, as the model sees them) for the next experiments.

    ``properties`` names the model's output columns (objectives first, then constraint-only properties);
    ``Y_observed`` has one column per property, NaN where not measured. Rows equal to a row of ``X_observed``
    or ``X_pending`` and repeated rows are never picked (the loop's pool already lacks known candidates).
    Fewer than ``q`` picks come back only when fewer rows are eligible. The joint posterior is sampled with
    ``MC_SAMPLES`` quasi-MC draws (``MC_SAMPLES_MULTI`` for hypervolume acquisitions).

    ``acquisition``: ``auto`` (default: ``qlogei`` for one objective; in a batch of five to eight, the picks after
    the first ``AUTO_GREEDY_PICKS`` are Thompson samples), ``qlogei``, ``qlognei``, ``ucb``, ``thompson``; several
    objectives use ``qlognehvi`` and a target band the in-band probability (see
    :mod:`agent.selection.acquisition`). Thompson sampling keeps
    pending points out of the batch but does not condition on them (it has no notion of pending outcomes).
    ``exploit_share`` (0 by default): ``int(q * share)`` picks go to the rows with the best posterior mean among
    those likely to be feasible, before the acquisition picks the rest conditioned on them (after De Ath et al.,
    "Greed is good", ACM TELO 2021). It applies to ``qlogei``, ``qlognei`` and ``ucb``. It is off by default
    because on the benchmark pools a quarter share did not need fewer experiments than plain qLogEI over 30
    seeds (benchmarks/RESULTS-selection.md); it is there for campaigns that want more exploitation per batch.
    """
    _check_inputs(X_pool, X_observed, Y_observed, properties, q)
    omap = ObjectiveMap.build(objectives, constraints, properties)
    name = resolve_acquisition(acquisition, omap)
    if not 0.0 <= exploit_share < 1.0:
        raise ValueError(f"exploit_share must be in [0, 1), got {exploit_share}")
    n_exploit = int(q * exploit_share) if name in GREEDY_SHARE_ACQUISITIONS else 0
    if len(X_observed) == 0 and name in ("qlogei", "qlognei", "qlognehvi"):
        raise ValueError("no observations yet: use initial_design() for the first batch")
    dtype = X_observed.dtype if X_observed.is_floating_point() else torch.double
    X_pool = X_pool.to(dtype)
    X_pending = None if X_pending is None or len(X_pending) == 0 else X_pending.to(dtype)

    eligible = available_rows(X_pool, [X_observed, X_pending] if X_pending is not None else [X_observed])
    if len(eligible) == 0:
        return []
    X_eligible = X_pool[eligible]
    mean, std = posterior_moments(model, X_eligible)
    keep = max(SURVIVORS_MULTI, 8 * q) if name == "qlognehvi" else max(SURVIVORS_MIN, SURVIVORS_PER_PICK * q)
    positions = prescreen(omap, mean, std, keep, seed)
    mc_samples = MC_SAMPLES_MULTI if name == "qlognehvi" else MC_SAMPLES
    X_surv = X_eligible[positions]
    n_thompson_from = q  # rank of the first pick that is a Thompson sample (none unless auto's tail below)

    if name == "thompson":
        with torch.no_grad(), gpytorch.settings.fast_pred_var():
            order, values = _thompson(model, omap, X_surv, q, seed, feasibility_model)
    elif name == "qlognehvi":
        with torch.no_grad(), gpytorch.settings.fast_pred_var():
            acq = build_acquisition(
                name, model, omap, X_observed=X_observed.to(dtype), Y_observed=Y_observed.to(dtype),
                X_pending=X_pending, seed=seed, mc_samples=mc_samples,
            )
            if feasibility_model is not None:
                acq = FeasibilityWeighted(acq, feasibility_model, log=is_log_acquisition(name))
            order, values = _greedy(acq, X_surv, q, X_pending, chunk=MULTI_CHUNK)
    else:
        thompson_tail = acquisition.lower() == "auto" and name == "qlogei" and q <= AUTO_THOMPSON_MAX_BATCH
        n_greedy = max(AUTO_GREEDY_PICKS, n_exploit) if thompson_tail else q
        order, values, n_exploit = _sample_greedy(
            name, model, omap, X_surv, X_pending, X_observed.to(dtype), min(q, n_greedy), seed, mc_samples,
            feasibility_model, mean[positions], std[positions], n_exploit,
        )
        if q > len(order) == n_greedy:
            with torch.no_grad(), gpytorch.settings.fast_pred_var():
                tail, tail_values = _thompson(model, omap, X_surv, q - len(order), seed, feasibility_model, order)
            n_thompson_from = len(order)
            order, values = order + tail, values + tail_values

    picks: list[Pick] = []
    rows = [int(eligible[positions[j]]) for j in order]
    exact_mean, exact_std = _exact_moments(model, X_pool[rows]) if rows else (mean[:0], std[:0])
    for rank, value in enumerate(values):
        row = rows[rank]
        m, s = exact_mean[rank], exact_std[rank]
        picks.append(
            Pick(
                index=row,
                point=None,
                acquisition_value=value,
                mean=as_dicts(properties, m),
                std=as_dicts(properties, s),
                rank=rank,
                reason=_reason(rank, n_exploit, n_thompson_from, name) + explain(omap, m, s, mean, std),
                features=X_pool[row].tolist(),
            )
        )
    return picks
