"""GP and deep-ensemble surrogates: shapes, seeds, calibration on known noise, BoTorch compatibility."""

from __future__ import annotations

import math

import pytest
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import ModelList

from surrogates import fit_surrogate
from surrogates.calibration import regression_metrics
from surrogates.ensemble import DeepEnsemble
from surrogates.gp import fit_gp

METRICS = {"n", "rmse", "mae", "r2", "nll", "cov68", "cov95", "spearman_err_std"}


@pytest.mark.parametrize("kind", ["gp", "ensemble"])
def test_posterior_shapes_and_metrics(kind: str, small_data, fast_settings) -> None:
    X, Y = small_data
    s = fit_surrogate(X, Y, kind=kind, cv_folds=3, settings=fast_settings)
    assert s.kind == kind and not s.is_prior and s.n_train == 40 and s.excluded_rows == []
    assert s.model.num_outputs == 1
    post = s.model.posterior(torch.rand(5, 3, 2, dtype=torch.double))  # b x q x d
    assert post.mean.shape == (5, 3, 1) and post.variance.shape == (5, 3, 1)
    assert (post.variance > 0).all()
    assert post.rsample(torch.Size([7])).shape == (7, 5, 3, 1)
    assert METRICS <= set(s.metrics["0"]) and s.metrics["0"]["n"] == 40
    assert s.metrics["0"]["r2"] > 0.5  # it learned something: 40 points of a smooth 2-D function


@pytest.mark.parametrize("kind", ["gp", "ensemble"])
def test_same_seed_same_model_different_seed_different_ensemble(kind: str, small_data, fast_settings) -> None:
    X, Y = small_data
    Xt = torch.rand(10, 2, dtype=torch.double, generator=torch.Generator().manual_seed(9))
    a = fit_surrogate(X, Y, kind=kind, seed=3, cv_folds=2, settings=fast_settings)
    b = fit_surrogate(X, Y, kind=kind, seed=3, cv_folds=2, settings=fast_settings)
    assert torch.equal(a.predict(Xt)[0], b.predict(Xt)[0]) and a.metrics == b.metrics
    assert a.training_hash == b.training_hash
    if kind == "ensemble":
        c = fit_surrogate(X, Y, kind=kind, seed=4, cv_folds=2, settings=fast_settings)
        assert not torch.equal(a.predict(Xt)[0], c.predict(Xt)[0])


def test_gp_is_calibrated_on_known_noise(make_data) -> None:
    """A GP on 150 noisy points recovers the noise level and covers fresh data at the nominal rate."""
    X, Y = make_data(150, seed=1, noise_std=0.1)
    s = fit_surrogate(X, Y, kind="gp", cv_folds=5)
    Xt, Yt = make_data(1000, seed=2, noise_std=0.1)
    mean, var = s.predict(Xt, observation_noise=True)
    m = regression_metrics(Yt[:, 0].numpy(), mean[:, 0].numpy(), var[:, 0].numpy())
    assert 0.90 <= m["cov95"] <= 0.99 and 0.58 <= m["cov68"] <= 0.78
    assert m["rmse"] < 0.13  # the noise floor is 0.1
    ideal_nll = 0.5 * math.log(2 * math.pi * 0.01) + 0.5
    assert m["nll"] < ideal_nll + 0.15
    assert 0.88 <= s.metrics["0"]["cov95"] <= 0.99  # and its own CV says so


def test_ensemble_is_calibrated_after_recalibration(make_data, fast_settings) -> None:
    X, Y = make_data(150, seed=1, noise_std=0.1)
    s = fit_surrogate(X, Y, kind="ensemble", cv_folds=4, settings=fast_settings)
    Xt, Yt = make_data(1000, seed=2, noise_std=0.1)
    mean, var = s.predict(Xt, observation_noise=True)
    m = regression_metrics(Yt[:, 0].numpy(), mean[:, 0].numpy(), var[:, 0].numpy())
    assert 0.88 <= m["cov95"] <= 0.995 and m["rmse"] < 0.2
    assert 0.88 <= s.metrics["0"]["cov95"] <= 0.99


def test_recalibration_fixes_an_overconfident_model(make_data, fast_settings) -> None:
    """Cut the ensemble's training short so it is miscalibrated: CV detects it and the scale repairs it."""
    X, Y = make_data(60, seed=5, noise_std=0.1)
    s = fit_surrogate(X, Y, kind="ensemble", cv_folds=4, settings=fast_settings)
    raw, cal = s.metrics["0"]["cov95_raw"], s.metrics["0"]["cov95"]
    assert not s.outputs[0].recalibration.is_identity
    assert not 0.90 <= raw <= 0.98 and 0.90 <= cal <= 0.98
    assert s.metrics["0"]["nll"] < s.metrics["0"]["nll_raw"]
    assert "std scaled by" in s.reason or "std mapped to" in s.reason
    # the recalibrated model is still a BoTorch model that acquisition functions can optimise through
    acq = qLogNoisyExpectedImprovement(s.model, X_baseline=X)
    Xq = torch.rand(2, 3, 2, dtype=torch.double, requires_grad=True)
    acq(Xq).sum().backward()
    assert torch.isfinite(Xq.grad).all() and Xq.grad.abs().sum() > 0
    out = s.outputs[0]
    scaled, base = s.model.posterior(X[:4]).variance, out.base.posterior(X[:4]).variance
    total = out.base.posterior(X[:4], observation_noise=True).variance
    assert torch.allclose(scaled, base * out.recalibration.variance_ratio(total))


def test_measured_noise_is_used_by_the_gp(make_data) -> None:
    X, Y = make_data(50, seed=3, noise_std=0.05)
    Yvar = torch.full_like(Y, 0.05**2)
    Yvar[:10] = 1.0  # ten results the lab says are very noisy
    s = fit_surrogate(X, Y, Yvar, kind="gp", cv_folds=0)
    noise = s.outputs[0].base.likelihood.noise  # fixed noise, in standardised units
    assert noise.shape[-1] == 50 and noise[..., :10].min() > 50 * noise[..., 10:].max()


def test_multi_output_is_a_model_list_usable_by_qlognei(make_data, fast_settings) -> None:
    X, Y = make_data(30, seed=4)
    Y2 = torch.cat([Y, (X[:, :1] - 0.5) ** 2], dim=-1)
    Y2[2, 1] = float("nan")  # the second property failed on one row: only that output loses it
    s = fit_surrogate(X, Y2, kind="gp", cv_folds=2)
    assert isinstance(s.model, ModelList) and s.model.num_outputs == 2
    assert s.excluded_by_output == {"0": [], "1": [2]} and s.excluded_rows == [2]
    assert s.outputs[0].X.shape[0] == 30 and s.outputs[1].X.shape[0] == 29
    acq = qLogNoisyExpectedImprovement(
        s.model, X_baseline=X, objective=GenericMCObjective(lambda Z, X=None: Z[..., 0] - Z[..., 1])
    )
    Xq = torch.rand(3, 2, 2, dtype=torch.double, requires_grad=True)
    value = acq(Xq)
    value.sum().backward()
    assert value.shape == (3,) and torch.isfinite(value).all() and Xq.grad.abs().sum() > 0


def test_ensemble_posterior_is_differentiable_and_usable_by_qlognei(small_data, fast_settings) -> None:
    X, Y = small_data
    s = fit_surrogate(X, Y, kind="ensemble", cv_folds=0, settings=fast_settings)
    assert isinstance(s.outputs[0].base, DeepEnsemble)
    acq = qLogNoisyExpectedImprovement(s.model, X_baseline=X)
    Xq = torch.rand(4, 2, 2, dtype=torch.double, requires_grad=True)
    acq(Xq).sum().backward()
    assert Xq.grad is not None and torch.isfinite(Xq.grad).all() and Xq.grad.abs().sum() > 0
    latent = s.model.posterior(X[:5]).variance
    total = s.model.posterior(X[:5], observation_noise=True).variance
    assert (total > latent).all()  # observation noise adds the members' predicted noise


def test_auto_picks_by_cv_nll_and_says_why(small_data, fast_settings) -> None:
    X, Y = small_data
    s = fit_surrogate(X, Y, kind="auto", cv_folds=3, settings=fast_settings)
    assert s.kind in {"gp", "ensemble"}
    assert s.reason.startswith(f"auto: {s.kind} cv-NLL")
    assert "ensemble" in s.reason and "gp" in s.reason


def test_sparse_gp_beyond_the_switch(make_data) -> None:
    X, Y = make_data(120, seed=6)
    model, recipe = fit_gp(X, Y, None, 0, {"exact_gp_max_n": 100, "num_inducing": 16, "sparse_maxiter": 60})
    assert recipe["variant"] == "sparse"
    with torch.no_grad():
        mean = model.posterior(X).mean[:, 0]
    assert torch.corrcoef(torch.stack([mean, Y[:, 0]]))[0, 1] > 0.9
    s = fit_surrogate(X, Y, kind="gp", cv_folds=0, settings={"exact_gp_max_n": 100, "num_inducing": 16, "sparse_maxiter": 60})
    assert s.outputs[0].recipe["variant"] == "sparse"
