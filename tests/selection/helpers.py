"""Helpers of the selection tests: small GPs fitted on analytic functions (fast, deterministic)."""

from __future__ import annotations

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from gpytorch.mlls import ExactMarginalLogLikelihood


def fit_gp(X: torch.Tensor, Y: torch.Tensor, seed: int = 0) -> SingleTaskGP:
    torch.manual_seed(seed)
    model = SingleTaskGP(X, Y)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model.eval()


def grid_2d(n: int = 21) -> torch.Tensor:
    g = torch.linspace(0, 1, n, dtype=torch.double)
    return torch.cartesian_prod(g, g)


def bumpy(X: torch.Tensor) -> torch.Tensor:
    """A 2-D function with a global maximum at (0.7, 0.2) and a lesser local one at (0.2, 0.8)."""
    return (1.0 * torch.exp(-((X - torch.tensor([0.7, 0.2])) ** 2).sum(-1) / 0.02)
            + 0.6 * torch.exp(-((X - torch.tensor([0.2, 0.8])) ** 2).sum(-1) / 0.03))
