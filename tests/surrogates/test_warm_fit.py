"""A GP re-optimised from a previous optimum stops at ``WARM_FTOL``: far fewer marginal-likelihood evaluations
than scipy's default tolerance from the same start, for a likelihood within a small share of a nat per point."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from botorch.fit import fit_gpytorch_mll
from gpytorch.mlls import ExactMarginalLogLikelihood

from surrogates.gp import WARM_FTOL, build_gp, fit_gp, hyperparameters

SETTINGS: dict[str, Any] = {"feature_groups": [[0, 1, 2], [3, 4, 5]]}  # the additive kernel, as on a simplex


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    X = torch.rand(n, 6, generator=g, dtype=torch.double)
    y = torch.sin(4 * X[:, :1]) + X[:, 3:4] * X[:, 1:2] + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.double)
    return X, y


@functools.cache
def _previous() -> dict[str, torch.Tensor]:
    """The hyperparameters of a fit on the first 20 rows, from the priors (what a warm start starts from)."""
    X, y = _data(24)
    return hyperparameters(fit_gp(X[:20], y[:20], None, 0, SETTINGS)[0])


def _loss(model: Any) -> float:
    """The negative marginal log likelihood per point (with the priors), what the fit minimises."""
    mll = ExactMarginalLogLikelihood(model.likelihood, model).train()
    with torch.no_grad():
        value = -float(mll(model(*model.train_inputs), model.train_targets))
    model.eval()
    return value


def test_a_warm_started_fit_stops_sooner_at_nearly_the_same_likelihood(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _data(24)
    init = _previous()
    evaluations: list[int] = [0]
    real = ExactMarginalLogLikelihood.forward

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        evaluations[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ExactMarginalLogLikelihood, "forward", counted)
    warm, _ = fit_gp(X, y, None, 0, SETTINGS, init=init)
    n_warm, evaluations[0] = evaluations[0], 0

    full = build_gp(X, y, None, "exact", SETTINGS)  # the same start, scipy's default tolerance
    params = dict(full.named_parameters())
    with torch.no_grad():
        for name, value in init.items():
            params[name].copy_(value)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(full.likelihood, full))
    n_full = evaluations[0]
    monkeypatch.undo()

    assert WARM_FTOL > 1e-8 and n_warm < n_full / 2, (n_warm, n_full)
    assert any(not torch.equal(v, init[k]) for k, v in hyperparameters(warm).items())  # it did re-optimise
    assert _loss(warm) - _loss(full) < 5e-3  # nats per point; 0 <= since the full fit is the tighter optimum


def test_the_fit_gives_the_hyperparameters_botorchs_plain_fit_gives() -> None:
    """Fitting with dense kernel matrices (not gpytorch's lazy ones) is pure speed: the same optimum, from the priors
    and from a previous one."""
    X, y = _data(24)
    for init in (None, _previous()):
        ours, _ = fit_gp(X, y, None, 0, SETTINGS, init=init)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            plain = build_gp(X, y, None, "exact", SETTINGS)
        if init is not None:
            params = dict(plain.named_parameters())
            with torch.no_grad():
                for name, value in init.items():
                    params[name].copy_(value)
        options = {} if init is None else {"options": {"ftol": WARM_FTOL}}
        fit_gpytorch_mll(ExactMarginalLogLikelihood(plain.likelihood, plain), optimizer_kwargs=options)
        got, want = hyperparameters(ours), hyperparameters(plain)
        assert set(got) == set(want)
        assert max(float((got[k] - want[k]).abs().max()) for k in got) < 1e-10
