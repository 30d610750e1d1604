"""The exact GP scales unit-cube features by the known bounds, not by the range of the first few points."""

from __future__ import annotations

import pytest
import torch
from gpytorch.kernels import MaternKernel
from gpytorch.priors import GammaPrior

from surrogates.api import fit_surrogate, load_surrogate
from surrogates.gp import input_bounds


def _data(n: int = 6, low: float = 0.4, high: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    X = low + (high - low) * torch.rand(n, 3, generator=gen, dtype=torch.double)
    return X, (X.sum(-1, keepdim=True) - 1.5).sin()


def test_unit_columns_use_the_unit_interval_and_others_the_data_range() -> None:
    X, _ = _data()
    X[:, 2] = X[:, 2] * 10 + 3  # a descriptor in physical units
    b = input_bounds(X, {})
    assert b[:, :2].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert b[0, 2] == pytest.approx(float(X[:, 2].min()))
    assert b[1, 2] == pytest.approx(float(X[:, 2].max()))


def test_explicit_bounds_win_and_are_checked() -> None:
    X, _ = _data()
    b = input_bounds(X, {"bounds": [[-1.0, 0.0, 0.0], [1.0, 2.0, 1.0]]})
    assert b.tolist() == [[-1.0, 0.0, 0.0], [1.0, 2.0, 1.0]]
    with pytest.raises(ValueError, match="bounds"):
        input_bounds(X, {"bounds": [[0.0], [1.0]]})


def test_fitted_gp_has_gamma_priors_known_bounds_and_reloads(tmp_path) -> None:
    X, y = _data()
    fitted = fit_surrogate(X, y, kind="gp", cv_folds=0)
    model = fitted.model
    assert model.input_transform.bounds.tolist() == [[0.0] * 3, [1.0] * 3]
    assert isinstance(model.covar_module, MaternKernel)
    assert isinstance(model.covar_module.lengthscale_prior, GammaPrior)
    fitted.save(tmp_path / "gp.pt")
    again = load_surrogate(tmp_path / "gp.pt")
    Xt = torch.rand(5, 3, dtype=torch.double)
    m1, v1 = fitted.predict(Xt)
    m2, v2 = again.predict(Xt)
    assert torch.allclose(m1, m2) and torch.allclose(v1, v2)


def test_botorch_prior_stays_selectable() -> None:
    X, y = _data()
    model = fit_surrogate(X, y, kind="gp", cv_folds=0, settings={"gp_prior": "botorch"}).model
    assert not isinstance(model.covar_module, MaternKernel)
    with pytest.raises(ValueError, match="gp_prior"):
        fit_surrogate(X, y, kind="gp", cv_folds=0, settings={"gp_prior": "edbo"})
