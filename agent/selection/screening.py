"""Cheap work over the whole pool: which rows may be picked, chunked posterior moments, and the pre-screen.

A pool of 10^6 candidates cannot go through a q-batch acquisition (each evaluation needs a joint posterior
with the incumbent set). The marginal posterior of every row, evaluated in chunks with LOVE fast predictive
variances, is cheap; an optimistic score on it (UCB, in-band probability, random Chebyshev scalarisations
for several objectives) keeps the few hundred rows any sensible batch acquisition would consider, and the
exact greedy batch is then chosen among those survivors.
"""

from __future__ import annotations

import contextlib
import math

import gpytorch
import numpy as np
import torch
from torch import Tensor

from agent.selection.objectives import ObjectiveMap

CHUNK = 2048
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


def _exact_gp_moments(model, X: Tensor, chunk: int) -> tuple[Tensor, Tensor] | None:
    """Fast marginal moments of a BoTorch exact GP (SingleTaskGP and kin), or None for other models.

    gpytorch's posterior builds a lazy joint covariance per chunk and carries overhead that dominates at
    10^5-10^6 rows; the marginals only need ``k(x, X_train)`` times the mean cache ``K^-1 y`` (exact) and a
    root of ``K^-1`` for the variance. The root is truncated to the leading eigen-directions of ``K``
    (:func:`_low_rank_inverse_root`), which can only *over*-state the variance: the pre-screen stays
    optimistic, and the exact batch acquisition afterwards uses the full posterior.
    """
    from botorch.models.gpytorch import BatchedMultiOutputGPyTorchModel
    from botorch.models.model import ModelList
    from gpytorch.models import ExactGP

    if isinstance(model, ModelList):  # one model per property (the surrogates' layout): each on its own
        parts = [_exact_gp_moments(m, X, chunk) for m in model.models]
        if any(p is None for p in parts):
            return None
        return torch.cat([p[0] for p in parts], dim=-1), torch.cat([p[1] for p in parts], dim=-1)  # type: ignore[index]
    if not (isinstance(model, ExactGP) and isinstance(model, BatchedMultiOutputGPyTorchModel)):
        return None
    if len(getattr(model, "_input_batch_shape", ())):
        return None
    model.eval()
    m = model.num_outputs
    with torch.no_grad(), gpytorch.settings.fast_pred_var():
        _ = model.posterior(X[:1]).variance  # builds the prediction strategy and its caches
        strategy = model.prediction_strategy
        mean_cache = strategy.mean_cache
        root = getattr(strategy, "_matloop_variance_root", None)
        if root is None:  # cached on gpytorch's prediction strategy, which is rebuilt whenever the data change
            root = _low_rank_inverse_root(strategy.lik_train_train_covar.to_dense())
            strategy._matloop_variance_root = root
        train_X = model.train_inputs[0]
        # float32 for the one big product when it is big: the reduction is a lower bound that the exact stage
        # re-checks anyway, and a single-precision rounding (~1e-7 relative) is far below what the screen resolves
        root32 = root.float() if len(X) * root.shape[-2] >= FLOAT32_MIN_WORK else None
        means, variances = [], []
        for start in range(0, len(X), chunk):
            Xt = model.transform_inputs(X[start : start + chunk])
            if m > 1:
                Xt = Xt.unsqueeze(0).expand(m, *Xt.shape)
            K = model.covar_module(Xt, train_X).to_dense()
            mean = model.mean_module(Xt) + (K @ mean_cache.unsqueeze(-1)).squeeze(-1)
            var = model.covar_module(Xt, diag=True) - _variance_reduction(K, root, root32)
            if m > 1:
                mean, var = mean.transpose(0, 1), var.transpose(0, 1)
            else:
                mean, var = mean.unsqueeze(-1), var.unsqueeze(-1)
            means.append(mean)
            variances.append(var.clamp_min(1e-12))
        mean, var = torch.cat(means), torch.cat(variances)
        transform = getattr(model, "outcome_transform", None)
        if transform is not None:
            mean, var = transform.untransform(mean, var)
    return mean, var.sqrt()


#: Largest rank of the variance root used in the pre-screen (cost: rows x n_train x rank).
VARIANCE_RANK = 256
#: rows x n_train above which the variance product runs in float32 (2x faster; the mean stays float64).
FLOAT32_MIN_WORK = 2**24


def _variance_reduction(K: Tensor, root: Tensor, root32: Tensor | None) -> Tensor:
    """``sum((K R)^2)``, the (lower-bounded) variance explained by the training data, in float32 when asked."""
    if root32 is None:
        return (K @ root).pow(2).sum(-1)
    return (K.float() @ root32).pow(2).sum(-1).to(K.dtype)


def _low_rank_inverse_root(K_hat: Tensor, rank: int = VARIANCE_RANK) -> Tensor:
    """``R`` with ``R R^T`` ~ ``K_hat^-1`` from the ``rank`` largest eigenpairs (exact when ``n <= rank``).

    ``k_x^T K_hat^-1 k_x = sum_i (u_i^T k_x)^2 / lambda_i``: each term is positive, so dropping the small-lambda
    directions (where a smooth kernel's ``k_x`` has little mass) gives a lower bound on the variance reduction.
    """
    n = K_hat.shape[-1]
    with single_thread():
        return _root(K_hat, n, rank)


@contextlib.contextmanager
def single_thread():
    """Run LAPACK factorisations on one thread: with two threads on a busy machine, eigh/QR ran 10-40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _root(K_hat: Tensor, n: int, rank: int) -> Tensor:
    if n <= 3 * rank:
        evals, evecs = torch.linalg.eigh(K_hat)
        evals, evecs = evals[..., -rank:], evecs[..., -rank:]
    else:  # randomized range finder: O(n^2 rank) instead of a full O(n^3) eigendecomposition
        with torch.random.fork_rng():
            torch.manual_seed(0)
            evecs, evals, _ = torch.svd_lowrank(K_hat, q=rank, niter=1)
    return evecs / evals.clamp_min(1e-12).sqrt().unsqueeze(-2)


def posterior_moments(model, X: Tensor, chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """Marginal posterior mean and std (``n x m``) of every row, in chunks, with LOVE fast variances."""
    fast = _exact_gp_moments(model, X, chunk)
    if fast is not None:
        return fast
    means, stds = [], []
    with torch.no_grad(), gpytorch.settings.fast_pred_var():
        for start in range(0, len(X), chunk):
            # one point per batch: only marginal variances are needed, never a chunk x chunk covariance
            post = model.posterior(X[start : start + chunk].unsqueeze(-2))
            mean, var = post.mean.squeeze(-2), post.variance.squeeze(-2)
            means.append(mean)
            stds.append(var.clamp_min(0).sqrt())
    return torch.cat(means), torch.cat(stds)


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
