"""Cheap work over the whole pool: which rows may be picked, chunked posterior moments, and the pre-screen.

A pool of 10^6 candidates cannot go through a q-batch acquisition (each evaluation needs a joint posterior
with the incumbent set). The marginal posterior of every row, evaluated in chunks by the surrogate's own
``marginal_moments`` (:mod:`surrogates.moments`) and spread over the run's executor (:mod:`agent.selection.scoring`),
is cheap; an optimistic score on it (UCB, in-band probability, random Chebyshev scalarisations
for several objectives) keeps the few hundred rows any sensible batch acquisition would consider, and the
exact greedy batch is then chosen among those survivors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from agent.selection.objectives import ObjectiveMap
from agent.selection.scoring import pool_moments
from surrogates.moments import marginal_moments

#: Optimism of the pre-screen, in posterior standard deviations (wider than the acquisition's own).
SCREEN_SIGMAS = 3.0


def _row_keys(X: Tensor, decimals: int = 9) -> np.ndarray:
    """One hashable key per row (rounded, so 0.1+0.2 and 0.3 are the same point)."""
    a = np.ascontiguousarray(np.round(X.detach().cpu().double().numpy(), decimals) + 0.0)
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def available_rows(X_pool: Tensor, taken: list[Tensor], exclude: Tensor | None = None) -> Tensor:
    """Indices of pool rows that may be picked: not in any ``taken`` set, not excluded, first of duplicates."""
    keys = _row_keys(X_pool)
    ok = np.ones(len(keys), dtype=bool)
    _, first = np.unique(keys, return_index=True)
    dup = np.ones(len(keys), dtype=bool)
    dup[first] = False
    ok &= ~dup
    for T in taken:
        if T is not None and len(T):
            if T.shape[-1] != X_pool.shape[-1]:
                raise ValueError(f"X_pool has {X_pool.shape[-1]} features but a taken set has {T.shape[-1]}")
            ok &= ~np.isin(keys, _row_keys(T))
    if exclude is not None:
        ok &= ~exclude.cpu().numpy().astype(bool)
    return torch.from_numpy(np.flatnonzero(ok))


def posterior_moments(model, X: Tensor, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """Marginal posterior mean and std (``n x m``) of every row, in chunks.

    The fast paths (exact-GP caches, ensemble members, recalibration) belong to the models and live in
    :func:`surrogates.moments.marginal_moments`; a GP's variance there may be over-stated for large training sets,
    which keeps the pre-screen optimistic (the exact batch acquisition afterwards uses the full posterior).
    By default a large ``X`` is scored in chunks of rows on the run's executor (:mod:`agent.selection.scoring`:
    a Dask cluster when the run has one); ``chunk`` scores it here, ``chunk`` rows at a time.
    """
    if chunk is None:
        mean, var = pool_moments(model, X)
    else:
        mean, var = marginal_moments(model, X, chunk=chunk)
    return mean, var.clamp_min(0).sqrt()


def _normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def feasibility_probability(omap: ObjectiveMap, mean: Tensor, std: Tensor) -> Tensor:
    """Probability (independent marginals) that every outcome constraint holds."""
    p = torch.ones(mean.shape[0], dtype=mean.dtype)
    for c, col in zip(omap.constraints, omap.constraint_columns, strict=True):
        z = (c.bound - mean[:, col]) / std[:, col].clamp_min(1e-12)
        p = p * (_normal_cdf(z) if c.upper else 1 - _normal_cdf(z))
    return p


def band_probability(mean: Tensor, std: Tensor, target: float, tolerance: float) -> Tensor:
    s = std.clamp_min(1e-12)
    return _normal_cdf((target + tolerance - mean) / s) - _normal_cdf((target - tolerance - mean) / s)


def prescreen(omap: ObjectiveMap, mean: Tensor, std: Tensor, keep: int, seed: int) -> Tensor:
    """Positions (into ``mean``) of the ``keep`` most promising rows, by several optimistic scores.

    Half the budget goes to the optimistic score (UCB / band reachability), a quarter to the posterior mean
    (pure exploitation) and a quarter to feasibility-weighted in-band probability or, for several objectives,
    to random Chebyshev scalarisations of the optimistic utilities. Rows unlikely to satisfy the outcome
    constraints (p < 1%) are ranked after all the others.
    """
    n = mean.shape[0]
    if n <= keep:
        return torch.arange(n)
    p_feas = feasibility_probability(omap, mean, std)
    penalty = torch.where(p_feas < 0.01, -1e30, 0.0)
    scores: list[tuple[Tensor, float]] = []
    if omap.is_multi:
        ucbs, means = [], []
        for k, col in enumerate(omap.objective_columns):
            o = omap.objectives[k]
            u_mean = omap.utility(mean[:, col], k)
            if o.goal == "target":
                dist = (mean[:, col] - o.target).abs() - o.tolerance
                u_ucb = -torch.clamp(dist - SCREEN_SIGMAS * std[:, col], min=0)
            else:
                u_ucb = u_mean + SCREEN_SIGMAS * std[:, col]
            ucbs.append(u_ucb)
            means.append(u_mean)
        U = torch.stack(ucbs, -1)
        U = (U - U.min(0).values) / (U.max(0).values - U.min(0).values).clamp_min(1e-12)
        gen = torch.Generator().manual_seed(seed)
        n_weights = 8
        for _ in range(n_weights):
            w = -torch.log(torch.rand(U.shape[1], generator=gen))  # normalised exponentials: uniform on the simplex
            w = w / w.sum()
            scores.append(((U * w).min(-1).values, 0.75 / n_weights))
        for m in means:
            scores.append((m, 0.25 / len(means)))
    else:
        o, col = omap.objectives[0], omap.objective_columns[0]
        mu, sd = mean[:, col], std[:, col]
        if o.goal == "target":
            assert o.target is not None and o.tolerance is not None
            reach = -torch.clamp((mu - o.target).abs() - o.tolerance - SCREEN_SIGMAS * sd, min=0) + 1e-3 * sd
            scores.append((reach, 0.5))
            scores.append((band_probability(mu, sd, o.target, o.tolerance) * p_feas, 0.25))
            scores.append((-(mu - o.target).abs(), 0.25))
        else:
            u = omap.utility(mu)
            scores.append((u + SCREEN_SIGMAS * sd, 0.5))
            scores.append((u, 0.25))
            scores.append((u + SCREEN_SIGMAS * sd + torch.log(p_feas.clamp_min(1e-30)) * sd, 0.25))
    chosen = torch.zeros(n, dtype=torch.bool)
    for score, share in scores:
        k = max(1, int(round(share * keep)))
        s = (score + penalty).masked_fill(chosen, -float("inf"))
        chosen[torch.topk(s, min(k, int((~chosen).sum()))).indices] = True
    if int(chosen.sum()) < keep:  # rounding: fill with the first score
        s = (scores[0][0] + penalty).masked_fill(chosen, -float("inf"))
        chosen[torch.topk(s, keep - int(chosen.sum())).indices] = True
    return torch.nonzero(chosen).squeeze(-1)
