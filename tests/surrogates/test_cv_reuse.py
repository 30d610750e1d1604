"""A re-decision optimises each GP's hyperparameters once: its folds are the full fit conditioned on their rows.

As Ax cross-validates by default (``refit_on_cv=False``). The folds' predictions are checked against the GP
posterior written out by hand from the full fit's kernel, noise, mean and transforms, not against the code
that builds them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import surrogates.gp as gp_module
from surrogates import fit_surrogate
from surrogates.api import _cv_predictions, _kfold
from surrogates.ensemble import fit_ensemble, fit_ensemble_folds
from surrogates.gp import fit_gp, gp_on_rows, hyperparameters


def _data(n: int, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g, dtype=torch.double)
    y1 = torch.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * torch.randn(n, generator=g, dtype=torch.double)
    y2 = X[:, 2] - X[:, 0] * X[:, 1] + 0.05 * torch.randn(n, generator=g, dtype=torch.double)
    return X, torch.stack([y1, y2], dim=-1)


def test_a_re_decision_optimises_each_outputs_gp_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = gp_module.fit_gpytorch_mll

    def counting(mll: Any, **kwargs: Any) -> Any:  # the real optimiser, counted
        calls.append(type(mll.model).__name__)
        return real(mll, **kwargs)

    monkeypatch.setattr(gp_module, "fit_gpytorch_mll", counting)
    X, Y = _data(30)
    fitted = fit_surrogate(X, Y, kind="gp", cv_folds=5)
    assert calls == ["SingleTaskGP", "SingleTaskGP"]  # 5 folds + 1 final per output before: 12
    assert "GP cross-validated with the full fit's hyperparameters" in fitted.reason
    for c in range(2):  # the final model is the full fit the folds were conditioned from, as it is fitted alone
        alone, _ = fit_gp(X, Y[:, c : c + 1], None, 0, {})
        got, want = hyperparameters(fitted.outputs[c].base), hyperparameters(alone)
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in got)


def _by_hand(model: Any, X: torch.Tensor, y: torch.Tensor, yvar: torch.Tensor | None, tr: torch.Tensor,
             te: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact GP posterior at ``X[te]`` given rows ``tr``, from ``model``'s fitted parts (a new measurement's
    variance: plus the learned noise, or plus the measured one)."""
    with torch.no_grad():
        mean_y, std_y = model.outcome_transform.means.reshape(()), model.outcome_transform.stdvs.reshape(())
        Xn = model.input_transform(X)
        K = model.covar_module(Xn[tr]).to_dense()
        Ks = model.covar_module(Xn[te], Xn[tr]).to_dense()
        kss = model.covar_module(Xn[te], diag=True)
        noise = (yvar[tr, 0] / std_y**2) if yvar is not None else model.likelihood.noise.reshape(()).expand(len(tr))
        c = model.mean_module.constant.reshape(())
        L = torch.linalg.cholesky(K + torch.diag(noise))
        ys = (y[tr, 0] - mean_y) / std_y
        alpha = torch.cholesky_solve((ys - c).unsqueeze(-1), L).squeeze(-1)
        mu = c + Ks @ alpha
        v = kss - (Ks * torch.cholesky_solve(Ks.T, L).T).sum(-1)
        new = yvar[te, 0] if yvar is not None else model.likelihood.noise.reshape(()) * std_y**2
        return mu * std_y + mean_y, v * std_y**2 + new


@pytest.mark.parametrize("measured_noise", [False, True])
def test_fold_predictions_are_the_full_fit_conditioned_on_the_folds_rows(measured_noise: bool) -> None:
    X, Y = _data(25)
    y = Y[:, :1]
    yvar = torch.full_like(y, 0.05**2) if measured_noise else None
    model, recipe = fit_gp(X, y, yvar, 0, {})
    mean, var = _cv_predictions("gp", X, y, yvar, folds=5, seed=0, settings={}, full=(model, recipe))
    for test in _kfold(25, 5, 0):
        tr = torch.as_tensor(np.setdiff1d(np.arange(25), test))
        te = torch.as_tensor(test)
        fold = gp_on_rows(model, recipe, X[tr], y[tr], None if yvar is None else yvar[tr])
        got, want = hyperparameters(fold), hyperparameters(model)
        assert all(torch.equal(got[k], want[k]) for k in want)
        mu, v = _by_hand(model, X, y, yvar, tr, te)
        torch.testing.assert_close(mean[te], mu, rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(var[te], v, rtol=1e-6, atol=1e-8)


def test_auto_still_picks_the_ensemble_where_the_gp_is_clearly_worse() -> None:
    """Noise 100x larger on one half: one homoscedastic GP cannot hold both, mean-variance members can."""
    g = torch.Generator().manual_seed(2)
    X = torch.rand(40, 1, generator=g, dtype=torch.double)
    noise = torch.where(X[:, 0] > 0.5, 1.0, 0.01)
    y = (X[:, 0] + noise * torch.randn(40, generator=g, dtype=torch.double)).unsqueeze(-1)
    fitted = fit_surrogate(X, y, kind="auto", settings={"ensemble": {"steps": 150, "n_members": 3, "hidden": 16}})
    assert fitted.kind == "ensemble", fitted.reason
    assert fitted.reason.startswith("auto: ensemble cv-NLL")


@pytest.mark.parametrize("batch_size", [8, 128])
def test_the_ensembles_folds_trained_together_equal_folds_trained_one_by_one(batch_size: int) -> None:
    """Folds' members in one batched module: each fold's ensemble is what training it alone on its rows gives (so
    no member sees its fold's held-out rows), with folds of 18 and 19 rows: minibatches of 8 put all five folds in
    one module (rows padded), of 128 (every row) make two groups (the 18-row fold, the 19-row ones)."""
    X, Y = _data(23)
    y = Y[:, :1]
    settings = {"ensemble": {"n_members": 3, "hidden": 8, "steps": 30, "batch_size": batch_size}}
    tests = [torch.as_tensor(t) for t in _kfold(23, 5, 0)]
    trains = [torch.as_tensor(np.setdiff1d(np.arange(23), t.numpy())) for t in tests]
    together = fit_ensemble_folds(X, y, trains, [1 + i for i in range(5)], settings)
    for i, tr in enumerate(trains):
        alone, _ = fit_ensemble(X[tr], y[tr], None, 1 + i, settings)
        for got, want in zip(together[i].member_predictions(X), alone.member_predictions(X), strict=True):
            torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-12, atol=1e-12)
