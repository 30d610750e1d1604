"""``marginal_moments``: the posterior mean and variance of every row, fast, for pools of up to 10^6 rows.

Selection pre-screens a whole pool on marginal moments only (``agent/selection/screening.py``); BoTorch's
``posterior`` builds a lazy joint covariance per call and carries overhead that dominates at 10^5-10^6 rows. The
shortcuts depend on the model's internals (gpytorch's prediction caches, the ensemble's members, the
recalibration map), so they live here, with the models, behind one function; the selection code calls
:func:`marginal_moments` and never reaches into a model.

* Models of ours (:class:`~surrogates.ensemble.DeepEnsemble`, :class:`~surrogates.calibration.RecalibratedModel`,
  :class:`~surrogates.calibration.PriorModel`) have a ``marginal_moments`` method: exactly their posterior's.
* A ``ModelList`` (one model per property): each model on its own, outputs side by side.
* A BoTorch exact GP (``SingleTaskGP`` and kin): ``k(x, X_train)`` times gpytorch's mean cache ``K^-1 y`` (exact) and
  a root of ``K^-1`` for the variance, truncated to the leading ``VARIANCE_RANK`` eigen-directions of ``K`` when
  there are more training points. The truncation can only *over*-state the variance (exact up to 256 training
  points), which keeps a pre-screen optimistic; ``tests/surrogates/test_moments.py`` pins both.
* Anything else: BoTorch's posterior, one row per t-batch (never a chunk x chunk covariance), with LOVE.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import gpytorch
import torch
from torch import Tensor

CHUNK = 2048
#: Largest rank of the variance root of an exact GP (cost: rows x n_train x rank).
VARIANCE_RANK = 256
#: rows x n_train above which the variance product runs in float32 (2x faster; the mean stays float64).
FLOAT32_MIN_WORK = 2**24

#: The variance root of each exact GP's current prediction strategy. gpytorch rebuilds the strategy whenever the
#: training data or hyperparameters change, so keying on it (weakly) keeps a root exactly as long as it is valid.
_ROOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def marginal_moments(model: Any, X: Tensor, observation_noise: bool = False, chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """Posterior mean and variance, each ``n x m``, of ``model`` at the rows of ``X`` (no gradients).

    ``observation_noise``: the predictive variance of a new measurement instead of the latent function's.
    """
    own = getattr(model, "marginal_moments", None)
    if callable(own):
        return own(X, observation_noise=observation_noise, chunk=chunk)
    from botorch.models.model import ModelList

    if isinstance(model, ModelList):
        parts = [marginal_moments(m, X, observation_noise, chunk) for m in model.models]
        return torch.cat([p[0] for p in parts], dim=-1), torch.cat([p[1] for p in parts], dim=-1)
    if _is_plain_exact_gp(model):
        return _exact_gp_moments(model, X, observation_noise, chunk)
    return posterior_moments(model, X, observation_noise, chunk)


def posterior_moments(model: Any, X: Tensor, observation_noise: bool = False, chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """The general path: BoTorch's posterior of each row on its own (LOVE variances), in chunks."""
    means, variances = [], []
    with torch.no_grad(), gpytorch.settings.fast_pred_var():
        for start in range(0, len(X), chunk):
            post = model.posterior(X[start : start + chunk].unsqueeze(-2), observation_noise=observation_noise)
            means.append(post.mean.squeeze(-2))
            variances.append(post.variance.squeeze(-2).clamp_min(0))
    return torch.cat(means), torch.cat(variances)


def _is_plain_exact_gp(model: Any) -> bool:
    """An exact BoTorch GP without input batches, whose noise at a new point does not depend on the point."""
    from botorch.models.gpytorch import BatchedMultiOutputGPyTorchModel
    from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood
    from gpytorch.models import ExactGP

    return (isinstance(model, ExactGP) and isinstance(model, BatchedMultiOutputGPyTorchModel)
            and len(model.batch_shape) == 0
            and isinstance(model.likelihood, (GaussianLikelihood, FixedNoiseGaussianLikelihood)))


def _exact_gp_moments(model: Any, X: Tensor, observation_noise: bool, chunk: int) -> tuple[Tensor, Tensor]:
    model.eval()
    m = model.num_outputs
    with torch.no_grad(), gpytorch.settings.fast_pred_var():
        _ = model.posterior(X[:1]).variance  # builds the prediction strategy and its caches
        strategy = model.prediction_strategy
        mean_cache = strategy.mean_cache
        root = _ROOTS.get(strategy)
        if root is None:
            root = _low_rank_inverse_root(strategy.lik_train_train_covar.to_dense())
            _ROOTS[strategy] = root
        train_X = model.train_inputs[0]
        # float32 for the one big product when it is big: the reduction is a lower bound anyway, and a
        # single-precision rounding (~1e-7 relative) is far below what a pre-screen resolves
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
        if observation_noise:
            # the noise of a new measurement is the same everywhere (homoscedastic, or BoTorch's mean of the
            # measured noise), so one point gives it
            noisy = model.posterior(X[:1], observation_noise=True).variance
            var = var + (noisy - model.posterior(X[:1]).variance).clamp_min(0)
    return mean, var


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
        if n <= 3 * rank:
            evals, evecs = torch.linalg.eigh(K_hat)
            evals, evecs = evals[..., -rank:], evecs[..., -rank:]
        else:  # randomized range finder: O(n^2 rank) instead of a full O(n^3) eigendecomposition
            with torch.random.fork_rng():
                torch.manual_seed(0)
                evecs, evals, _ = torch.svd_lowrank(K_hat, q=rank, niter=1)
    return evecs / evals.clamp_min(1e-12).sqrt().unsqueeze(-2)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run LAPACK factorisations on one thread: with two threads on a busy machine, eigh/QR ran 10-40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
