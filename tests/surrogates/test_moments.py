"""``marginal_moments`` (what selection pre-screens pools with) equals ``posterior(X).mean`` / ``.variance``.

Every model a campaign can fit goes through it: exact GPs (one output, batched outputs, measured noise), the deep
ensemble, the recalibrated wrappers (single scale and power map), the prior, a ``ModelList`` of them, and the
``FittedSurrogate`` that ``fit_surrogate`` returns. An exact GP with more training points than the variance root's
rank may only over-state the variance (a pre-screen must stay optimistic).
"""

from __future__ import annotations

import pytest
import torch
from botorch.models import ModelList, SingleTaskGP
from botorch.models.transforms.outcome import Standardize

from surrogates.api import fit_surrogate
from surrogates.calibration import PriorModel, RecalibratedModel, StdMap
from surrogates.ensemble import fit_ensemble
from surrogates.gp import fit_gp
from surrogates.moments import VARIANCE_RANK, marginal_moments
from tests.surrogates.conftest import FAST_ENSEMBLE, truth


def _data(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=torch.double)
    y = (truth(X) + 0.05 * torch.randn(n, generator=gen, dtype=torch.double)).unsqueeze(-1)
    P = torch.rand(300, 2, generator=gen, dtype=torch.double)
    return X, y, P


def _posterior(model, P, observation_noise=False):
    with torch.no_grad():
        post = model.posterior(P.unsqueeze(-2), observation_noise=observation_noise)
        return post.mean.squeeze(-2), post.variance.squeeze(-2)


def _assert_equal(model, P, observation_noise=False):
    mean, var = marginal_moments(model, P, observation_noise, chunk=128)
    exp_mean, exp_var = _posterior(model, P, observation_noise)
    torch.testing.assert_close(mean, exp_mean, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(var, exp_var, atol=1e-8, rtol=1e-5)


@pytest.mark.parametrize("observation_noise", [False, True])
def test_gp_moments_equal_the_posterior(observation_noise):
    X, y, P = _data(60)
    gp, _ = fit_gp(X, y, None, 0, {})
    _assert_equal(gp, P, observation_noise)
    noisy, _ = fit_gp(X, y, torch.full_like(y, 0.05**2), 0, {})  # measured noise: a fixed-noise likelihood
    _assert_equal(noisy, P, observation_noise)


def test_a_batched_multi_output_gp_equals_the_posterior():
    X, y, P = _data(50, seed=1)
    Y = torch.cat([y, torch.cos(3 * X[:, :1])], dim=-1)
    gp = SingleTaskGP(X, Y, outcome_transform=Standardize(m=2)).eval()
    _assert_equal(gp, P)


def test_a_gp_on_more_points_than_the_root_only_overstates_the_variance():
    X, y, P = _data(VARIANCE_RANK + 150, seed=2)
    gp, _ = fit_gp(X, y, None, 0, {})
    mean, var = marginal_moments(gp, P)
    exp_mean, exp_var = _posterior(gp, P)
    torch.testing.assert_close(mean, exp_mean, atol=1e-6, rtol=1e-5)
    assert bool((var >= exp_var - 1e-9).all())


def test_ensemble_recalibrated_prior_and_model_list_equal_their_posteriors():
    X, y, P = _data(40, seed=3)
    ensemble, _ = fit_ensemble(X, y, None, 0, FAST_ENSEMBLE)
    gp, _ = fit_gp(X, y, None, 0, {})
    for model in (ensemble, PriorModel(0.3, 2.0)):
        for noise in (False, True):
            _assert_equal(model, P, noise)
    power = StdMap("power", 1.3, 0.7, 0.2)
    for base in (gp, ensemble):
        for std_map in (StdMap("scale", 1.7, 1.0, 1.0), power):
            for noise in (False, True):
                _assert_equal(RecalibratedModel(base, std_map), P, noise)
    _assert_equal(ModelList(RecalibratedModel(gp, power), ensemble, PriorModel()), P)


def test_a_fitted_surrogate_owns_its_moments():
    X, y, P = _data(30, seed=4)
    Y = torch.cat([y, X[:, :1] ** 2], dim=-1)
    fitted = fit_surrogate(X, Y, kind="gp", seed=0, cv_folds=3)
    mean, var = fitted.marginal_moments(P)
    exp_mean, exp_var = _posterior(fitted.model, P)
    assert mean.shape == var.shape == (len(P), 2)
    torch.testing.assert_close(mean, exp_mean, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(var, exp_var, atol=1e-8, rtol=1e-5)
