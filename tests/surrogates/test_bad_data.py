"""Bad data never crashes a fit: NaN/inf targets are excluded and recorded; nothing-to-learn gives a prior."""

from __future__ import annotations

import pytest
import torch

from surrogates import fit_surrogate
from surrogates.calibration import PriorModel


def test_nan_and_inf_targets_are_excluded_and_recorded(small_data) -> None:
    X, Y = small_data
    Y = Y.clone()
    Y[[1, 7]] = float("nan")
    Y[12] = float("inf")
    s = fit_surrogate(X, Y, kind="gp", cv_folds=3)
    assert s.excluded_rows == [1, 7, 12] and s.n_train == 37
    assert s.metrics["0"]["n"] == 37 and torch.isfinite(s.predict(X)[0]).all()
    assert s.training_hash != fit_surrogate(X, small_data[1], kind="gp", cv_folds=0).training_hash


def test_negative_or_nan_measured_noise_excludes_the_row(small_data) -> None:
    X, Y = small_data
    Yvar = torch.full_like(Y, 0.01)
    Yvar[3] = -1.0
    Yvar[4] = float("nan")
    s = fit_surrogate(X, Y, Yvar, kind="gp", cv_folds=0)
    assert s.excluded_rows == [3, 4] and s.n_train == 38


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points_give_the_prior(n: int) -> None:
    X = torch.rand(n, 3, dtype=torch.double)
    Y = torch.full((n, 1), 2.5, dtype=torch.double)
    s = fit_surrogate(X, Y)
    assert s.is_prior and s.kind == "prior" and s.prior_outputs == [0]
    assert isinstance(s.outputs[0].base, PriorModel)
    mean, var = s.predict(torch.rand(4, 3, dtype=torch.double))
    assert mean.shape == (4, 1) and torch.all(mean == (2.5 if n else 0.0)) and torch.all(var == 1.0)
    assert "no output has two or more distinct measurements" in s.reason


def test_all_nan_targets_give_the_prior_with_every_row_recorded() -> None:
    X = torch.rand(5, 2, dtype=torch.double)
    s = fit_surrogate(X, torch.full((5, 1), float("nan"), dtype=torch.double))
    assert s.is_prior and s.excluded_rows == [0, 1, 2, 3, 4] and s.n_train == 0


def test_constant_target_is_a_prior_output_but_others_still_learn(small_data) -> None:
    X, Y = small_data
    Y2 = torch.cat([Y, torch.full_like(Y, 0.7)], dim=-1)
    s = fit_surrogate(X, Y2, kind="gp", cv_folds=2)
    assert s.kind == "gp" and s.is_prior and s.prior_outputs == [1]
    assert "outputs [1]" in s.reason
    mean, _ = s.predict(X[:3])
    assert torch.allclose(mean[:, 1], torch.tensor(0.7, dtype=torch.double))
    assert s.metrics["0"]["r2"] > 0.5 and s.metrics["1"]["n"] == 40
    # the prior's posterior is still a BoTorch posterior with gradients (acquisition code must not break)
    Xq = torch.rand(2, 1, 2, dtype=torch.double, requires_grad=True)
    s.model.posterior(Xq).mean.sum().backward()
    assert Xq.grad is not None


def test_two_points_fit_without_cross_validation() -> None:
    X = torch.tensor([[0.1, 0.2], [0.8, 0.5]], dtype=torch.double)
    s = fit_surrogate(X, torch.tensor([[1.0], [2.0]], dtype=torch.double))
    assert s.kind == "gp" and not s.is_prior and "too few points" in s.reason
    assert torch.isfinite(s.predict(X)[0]).all()


@pytest.mark.parametrize(
    ("X", "Y", "Yvar", "message"),
    [
        (torch.rand(4, 2), torch.rand(5, 1), None, "X has 4 rows but Y has 5"),
        (torch.rand(4), torch.rand(4, 1), None, r"X must be \(n, d\)"),
        (torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), torch.rand(2, 1), None, r"non-finite features in rows \[1\]"),
        (torch.rand(4, 2), torch.rand(4, 2), torch.rand(4, 1), "Yvar has shape"),
    ],
)
def test_malformed_inputs_raise_clear_errors(X, Y, Yvar, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_surrogate(X, Y, Yvar)


def test_unknown_kind_is_refused(small_data) -> None:
    with pytest.raises(ValueError, match="kind='svm'"):
        fit_surrogate(*small_data, kind="svm")


def test_unknown_settings_are_refused_by_name(small_data) -> None:
    with pytest.raises(ValueError, match=r"unknown surrogate settings \['exact_gp_maxn'\]"):
        fit_surrogate(*small_data, settings={"exact_gp_maxn": 10})
    with pytest.raises(ValueError, match=r"ensemble\.\['members'\]"):
        fit_surrogate(*small_data, settings={"ensemble": {"members": 3}})
    with pytest.raises(ValueError, match="gp_variant='big'"):
        fit_surrogate(*small_data, settings={"gp_variant": "big"})


def test_a_feature_constant_in_the_training_rows_does_not_blow_up_an_ensemble() -> None:
    """A category nobody has measured yet is a constant column of the training rows. Scaled by its zero spread,
    a row where it differs reached the members as an input of 1e8, and a kept ensemble fine-tuned on such a row
    spread 2.5 million times the data's std (the ask/tell resume test's grid). The column keeps its unit."""
    from surrogates.ensemble import DeepEnsemble

    g = torch.Generator().manual_seed(0)
    X = torch.cat([torch.rand(24, 2, generator=g, dtype=torch.double), torch.zeros(24, 1, dtype=torch.double)], dim=1)
    y = torch.sin(3 * X[:, 0]) + X[:, 1]
    model = DeepEnsemble(3, {"n_members": 3, "hidden": 8, "steps": 60}).fit(X, y, seed=1)
    assert model.x_scale[2] == 1.0 and model.x_shift[2] == 0.0
    new = torch.tensor([[0.5, 0.5, 1.0]], dtype=torch.double)  # the unmeasured category
    mean, var = model.member_predictions(new)
    assert mean.abs().max() < 10 * float(y.std()) + float(y.abs().max()) and var.max() < 100 * float(y.var())
    warm = DeepEnsemble(3, model.settings).fit(torch.cat([X, new]), torch.cat([y, torch.tensor([1.0],
                                                                                             dtype=torch.double)]),
                                               seed=1, start=model.state_dict())
    assert warm.spread(torch.cat([X, new])) < 10 * model.spread(X)
