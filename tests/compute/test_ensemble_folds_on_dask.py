"""An ensemble's cross-validation folds on a real Dask LocalCluster: all folds' members side by side, and the same
ensembles as fitting fold after fold in this process."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from matloop.compute import fanning_out
from surrogates.api import _kfold
from surrogates.ensemble import MEMBER_CHUNK, fit_ensemble, fit_ensemble_folds


def test_every_fold_s_members_go_out_in_one_map_and_equal_each_fold_fitted_alone(on_dask: Any) -> None:
    g = torch.Generator().manual_seed(5)
    X = torch.rand(21, 3, generator=g, dtype=torch.double)
    y = torch.sin(4 * X[:, 0]) + X[:, 1] - X[:, 2] ** 2
    settings = {"ensemble": {"n_members": MEMBER_CHUNK + 1, "hidden": 8, "steps": 30}}
    tests = _kfold(21, 4, 0)
    trains = [torch.as_tensor(np.setdiff1d(np.arange(21), t)) for t in tests]
    with fanning_out(on_dask):
        fanned = fit_ensemble_folds(X, y, trains, [7 + i for i in range(4)], settings)
    assert on_dask.names == ["ensemble-members"]  # one map for every fold, not one per fold
    for i, rows in enumerate(trains):
        alone, _ = fit_ensemble(X[rows], y[rows].unsqueeze(-1), None, 7 + i, settings)
        for got, want in zip(fanned[i].member_predictions(X), alone.member_predictions(X), strict=True):
            torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-12, atol=1e-12)
