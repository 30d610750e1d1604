"""The GP's additive kernel over design parameters: groups from the featurizer, choice, accuracy, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from matloop.space import CategoricalParameter, ContinuousParameter, ParametricSpace
from surrogates import fit_surrogate, load_surrogate
from surrogates.featurize import ParametricFeaturizer
from surrogates.gp import resolved_kernel
from tests.surrogates.test_mixed_space import DATA, hybrid_space


def test_featurizer_groups_each_parameters_columns() -> None:
    space = ParametricSpace(parameters=[
        ContinuousParameter(name="t", type="continuous", bounds=(0.0, 10.0)),
        CategoricalParameter(name="solvent", type="categorical", options=["a", "b", "c"]),
        CategoricalParameter(name="base", type="categorical", options=["x", "y"],
                             descriptors={"x": {"pka": 1.0, "size": 2.0}, "y": {"pka": 3.0, "size": 1.0}}),
    ])
    feats = ParametricFeaturizer(space)
    assert feats.feature_groups == [[0], [1, 2, 3], [4, 5]]  # numeric, one-hot block, descriptor block
    assert sorted(i for g in feats.feature_groups for i in g) == list(range(feats.dim))


def test_auto_picks_the_additive_kernel_only_when_a_parameter_spans_several_columns() -> None:
    assert resolved_kernel({"feature_groups": [[0, 1, 2], [3]]}) == "additive"
    assert resolved_kernel({"feature_groups": [[0], [1], [2]]}) == "matern"  # compositions, numeric parameters
    assert resolved_kernel({}) == "matern"
    assert resolved_kernel({"feature_groups": [[0, 1, 2], [3]], "gp_prior": "botorch"}) == "matern"
    assert resolved_kernel({"feature_groups": [[0, 1, 2], [3]], "cat_dims": [0, 1, 2]}) == "matern"
    assert resolved_kernel({"feature_groups": [[0], [1]], "kernel": "additive"}) == "additive"


def test_bad_kernel_settings_are_refused_with_what_is_wrong() -> None:
    X, y = torch.rand(8, 3, dtype=torch.double), torch.rand(8, 1, dtype=torch.double)
    with pytest.raises(ValueError, match="kernel='rbf'"):
        fit_surrogate(X, y, kind="gp", cv_folds=0, settings={"kernel": "rbf"})
    with pytest.raises(ValueError, match="needs feature_groups"):
        fit_surrogate(X, y, kind="gp", cv_folds=0, settings={"kernel": "additive"})
    with pytest.raises(ValueError, match="no column may be in two groups"):
        fit_surrogate(X, y, kind="gp", cv_folds=0, settings={"kernel": "additive", "feature_groups": [[0, 1], [1, 2]]})
    with pytest.raises(ValueError, match="in 0..2"):
        fit_surrogate(X, y, kind="gp", cv_folds=0, settings={"kernel": "additive", "feature_groups": [[0], [3]]})


@pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared reference data is not at {DATA}")
def test_additive_kernel_learns_categorical_choices_from_fewer_experiments(tmp_path: Path) -> None:
    """24 measured hybrid perovskites of 192: the additive kernel predicts the other 168 gaps better.

    A choice's effect (say, iodide) is learnt from every experiment that made it, whatever the organic
    cation was; one Matern over all 23 one-hot bits must learn each combination's neighbourhood separately.
    """
    space, gaps = hybrid_space()
    feats = ParametricFeaturizer(space)
    X = feats.transform(gaps[["organic", "cation", "anion"]].to_dict("records"))
    y = torch.tensor(gaps["hse_gap"].to_numpy(), dtype=torch.double).unsqueeze(-1)
    rmse: dict[str, list[float]] = {"matern": [], "auto": []}
    for seed in range(5):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        train, test = order[:24], order[24:]
        for kernel in rmse:
            fitted = fit_surrogate(X[train], y[train], kind="gp", cv_folds=0,
                                   settings={"kernel": kernel, "feature_groups": feats.feature_groups})
            assert fitted.outputs[0].recipe["kernel"] == ("additive" if kernel == "auto" else "matern")
            rmse[kernel].append(float((fitted.predict(X[test])[0] - y[test]).pow(2).mean().sqrt()))
    assert sum(rmse["auto"]) < 0.85 * sum(rmse["matern"]), rmse

    fitted.save(tmp_path / "additive.pt")
    again = load_surrogate(tmp_path / "additive.pt")
    assert again.outputs[0].recipe["feature_groups"] == feats.feature_groups
    assert torch.allclose(again.predict(X)[0], fitted.predict(X)[0], atol=1e-10)
