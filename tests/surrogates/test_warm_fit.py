"""How a GP is fitted from the priors and from a previous optimum."""

from __future__ import annotations

from typing import Any

import torch
from botorch.fit import fit_gpytorch_mll
from gpytorch.mlls import ExactMarginalLogLikelihood

from surrogates.gp import build_gp, fit_gp, hyperparameters

SETTINGS: dict[str, Any] = {"feature_groups": [[0, 1, 2], [3, 4, 5]]}  # the additive kernel, as on a simplex


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    X = torch.rand(n, 6, generator=g, dtype=torch.double)
    y = torch.sin(4 * X[:, :1]) + X[:, 3:4] * X[:, 1:2] + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.double)
    return X, y


def test_the_fit_gives_the_hyperparameters_botorchs_plain_fit_gives() -> None:
    """Fitting with dense kernel matrices (not gpytorch's lazy ones) is pure speed: the same optimum, from the priors
    and from a previous one."""
    X, y = _data(24)
    for init in (None, hyperparameters(fit_gp(X[:20], y[:20], None, 0, SETTINGS)[0])):
        ours, _ = fit_gp(X, y, None, 0, SETTINGS, init=init)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            plain = build_gp(X, y, None, "exact", SETTINGS)
        if init is not None:
            params = dict(plain.named_parameters())
            with torch.no_grad():
                for name, value in init.items():
                    params[name].copy_(value)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(plain.likelihood, plain))
        got, want = hyperparameters(ours), hyperparameters(plain)
        assert set(got) == set(want)
        assert max(float((got[k] - want[k]).abs().max()) for k in got) < 1e-10
