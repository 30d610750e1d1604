"""Mixed categorical spaces end to end: hybrid perovskites, one-hot with a mixed kernel, or descriptors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from matloop.space import CategoricalParameter, ParametricSpace
from surrogates import fit_surrogate, load_surrogate
from surrogates.featurize import ParametricFeaturizer

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "hybrid_perovskites"


def hybrid_space() -> tuple[ParametricSpace, pd.DataFrame]:
    gaps = pd.read_csv(DATA / "hse_gaps.csv")
    desc = pd.read_csv(DATA / "descriptors.csv", header=None, names=["param", "option", "name", "value"])
    params = []
    for name in ("organic", "cation", "anion"):
        rows = desc[desc.param == name]
        table = {o: dict(zip(g["name"], g["value"], strict=True)) for o, g in rows.groupby("option")}
        options = sorted(gaps[name].unique())
        params.append(CategoricalParameter(name=name, type="categorical", options=options, descriptors=table))
    return ParametricSpace(parameters=params), gaps


@pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared reference data is not at {DATA}")
def test_hybrid_perovskites_one_hot_with_a_mixed_kernel(tmp_path: Path) -> None:
    space, gaps = hybrid_space()
    points = gaps[["organic", "cation", "anion"]].to_dict("records")
    y = torch.tensor(gaps["hse_gap"].to_numpy(), dtype=torch.double).unsqueeze(-1)
    train = torch.ones(len(y), dtype=torch.bool)
    train[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:48]] = False  # 48 held out at random

    # The shipped descriptors give every option of a parameter the same numbers (checked
    # in the file): "auto" notices and falls back to one-hot instead of erasing the choice.
    auto = ParametricFeaturizer(space)
    assert len(auto.notes) == 3 and all("identical descriptors" in note for note in auto.notes)
    with pytest.raises(ValueError, match="'organic': options .* have identical descriptors"):
        ParametricFeaturizer(space, categorical="descriptors")
    assert auto.dim == 16 + 3 + 4 and auto.categorical_dims == list(range(23))
    X = auto.transform(points)

    plain = fit_surrogate(X[train], y[train], kind="gp", cv_folds=0)
    mixed = fit_surrogate(X[train], y[train], kind="gp", cv_folds=0, settings={"cat_dims": auto.categorical_dims})
    assert type(mixed.outputs[0].base).__name__ == "MixedSingleTaskGP"
    spread = y[~train].std()
    for s in (plain, mixed):
        rmse = (s.predict(X[~train])[0] - y[~train]).pow(2).mean().sqrt()
        assert rmse < 0.5 * spread  # both learn the gap from the three choices
    mixed.save(tmp_path / "mixed.pt")
    assert torch.allclose(load_surrogate(tmp_path / "mixed.pt").predict(X)[0], mixed.predict(X)[0], atol=1e-10)
