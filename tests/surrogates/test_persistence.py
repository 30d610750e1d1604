"""Saving and loading: state dicts plus training data and hash; the reloaded model predicts the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from surrogates import fit_surrogate, load_surrogate


@pytest.mark.parametrize(
    ("kind", "settings"),
    [("gp", {}), ("ensemble", None), ("gp", {"exact_gp_max_n": 10, "num_inducing": 8, "sparse_maxiter": 40})],
    ids=["exact-gp", "ensemble", "sparse-gp"],
)
def test_round_trip_gives_the_same_predictions(kind: str, settings, small_data, fast_settings, tmp_path: Path) -> None:
    X, Y = small_data
    Y2 = torch.cat([Y, -2 * Y + 0.1 * X[:, :1]], dim=-1)
    Y2[5, 0] = float("nan")
    folds = 0 if "exact_gp_max_n" in (settings or {}) else 2  # the sparse GP is slow to cross-validate
    s = fit_surrogate(X, Y2, kind=kind, cv_folds=folds, settings=settings if settings is not None else fast_settings)
    path = tmp_path / "model.pt"
    s.save(path)
    r = load_surrogate(path)
    Xt = torch.rand(25, 2, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    for noise in (False, True):
        (m1, v1), (m2, v2) = s.predict(Xt, noise), r.predict(Xt, noise)
        assert torch.allclose(m1, m2, rtol=0, atol=1e-10) and torch.allclose(v1, v2, rtol=0, atol=1e-10)
    assert (r.kind, r.reason, r.training_hash) == (s.kind, s.reason, s.training_hash)
    assert str(r.metrics) == str(s.metrics)  # str: NaN metrics (no CV) compare equal
    assert (r.excluded_rows, r.n_train, r.is_prior) == ([5], 39, False)
    assert r.model.num_outputs == 2
    # the BoTorch model itself, not only predict(), is the reloaded one
    with torch.no_grad():
        assert torch.allclose(r.model.posterior(Xt).mean, s.model.posterior(Xt).mean, atol=1e-10)


def test_round_trip_of_a_prior(tmp_path: Path) -> None:
    s = fit_surrogate(torch.rand(1, 2, dtype=torch.double), torch.tensor([[3.0]], dtype=torch.double))
    s.save(tmp_path / "p.pt")
    r = load_surrogate(tmp_path / "p.pt")
    assert r.is_prior and r.kind == "prior" and torch.equal(r.predict(torch.rand(2, 2, dtype=torch.double))[0],
                                                             torch.full((2, 1), 3.0, dtype=torch.double))


def test_training_hash_names_the_data(small_data) -> None:
    X, Y = small_data
    a = fit_surrogate(X, Y, kind="gp", cv_folds=0)
    b = fit_surrogate(X, Y + 1e-9, kind="gp", cv_folds=0)
    assert len(a.training_hash) == 64 and a.training_hash != b.training_hash


def test_loading_something_else_is_a_clear_error(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a saved matloop surrogate"):
        load_surrogate(tmp_path / "other.pt")
