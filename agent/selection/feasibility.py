"""Feasibility learnt from failed experiments: a probability of success that weights the acquisition.

A failed synthesis or a crashed calculation is data (DESIGN.md): it says "don't go there". We model it as a
least-squares GP classifier (Rasmussen & Williams, sec. 6.5): a GP regressed on labels +1 (succeeded) / -1
(failed), squashed through a probit, ``p = Phi(mu / sqrt(1 + var))``. It is deliberately simple: it reuses the
exact-GP machinery the surrogates already rely on and costs one GP fit. Selection multiplies the acquisition by ``p`` (adds ``log p`` to log-acquisitions), which is the expected
acquisition when a failed experiment yields nothing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class FeasibilityModel(Protocol):
    """Anything that gives the probability that an experiment at ``X`` (``... x d``) succeeds (``...``)."""

    def probability(self, X: Tensor) -> Tensor: ...


class ConstantFeasibility:
    """Every experiment succeeds with the same probability (used when failures are all-or-nothing so far)."""

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def probability(self, X: Tensor) -> Tensor:
        return torch.full(X.shape[:-1], self.p, dtype=X.dtype)


class GPFeasibility:
    """Least-squares GP classifier on success (+1) / failure (-1) labels; see the module docstring."""

    def __init__(self, model) -> None:
        self.model = model

    def probability(self, X: Tensor) -> Tensor:
        post = self.model.posterior(X)
        mean = post.mean.squeeze(-1)
        var = post.variance.squeeze(-1)
        return torch.distributions.Normal(0.0, 1.0).cdf(mean / torch.sqrt(1.0 + var)).clamp(1e-6, 1.0)


def fit_feasibility(X: Tensor, succeeded: Tensor, seed: int = 0) -> FeasibilityModel:
    """Fit a feasibility model on inputs ``X`` (``n x d``) and booleans ``succeeded`` (``n``).

    With only successes (or only failures) there is nothing to separate: the model is the smoothed
    success rate (Laplace's rule), so a campaign with no failure yet is not penalised anywhere.
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    if X.ndim != 2 or succeeded.shape != X.shape[:1]:
        raise ValueError(f"fit_feasibility needs X (n x d) and succeeded (n,), got {tuple(X.shape)} and "
                         f"{tuple(succeeded.shape)}")
    ok = succeeded.bool()
    n, n_ok = len(ok), int(ok.sum())
    if n_ok in (0, n):
        return ConstantFeasibility((n_ok + 1) / (n + 2))
    torch.manual_seed(seed)
    labels = torch.where(ok, 1.0, -1.0).to(X).unsqueeze(-1)
    model = SingleTaskGP(X, labels, outcome_transform=None)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return GPFeasibility(model)
