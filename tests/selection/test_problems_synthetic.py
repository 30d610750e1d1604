"""The synthetic benchmark pools build, sanely and the same way from the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.problems_synthetic import SOURCE, SPLIT, SYNTHETIC

#: Pools drawn from a seed (the others are grids, the same whatever the seed).
DRAWN = {"mixed_ackley", "mixed_styblinski", "needle_dropwave", "needle_michalewicz", "simlab_branin",
         "simlab_hartmann6"}


def test_every_pool_has_a_split_and_a_source_and_the_splits_are_halves():
    assert set(SPLIT) == set(SYNTHETIC) == set(SOURCE)
    assert sorted(SPLIT.values()) == ["dev"] * (len(SPLIT) // 2) + ["heldout"] * (len(SPLIT) // 2)
    assert all("licence" in SOURCE[name] for name in SOURCE)
    for kind in ("simplex", "mixed", "needle", "simlab"):  # each kind of structure in both splits
        assert {SPLIT[n] for n in SPLIT if n.startswith(kind)} == {"dev", "heldout"}


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_each_pool_is_sane_and_reproducible(name):
    pool = SYNTHETIC[name](0)
    n = len(pool.y)
    assert pool.name == name and 500 <= n <= 5000
    assert pool.X.shape == (n, len(pool.columns)) and pool.X.dtype == torch.double
    assert bool(((pool.X >= 0) & (pool.X <= 1)).all()), "features are unit-scaled"
    assert pool.model_X.shape[0] == n and sorted(i for g in pool.feature_groups for i in g) == list(
        range(pool.model_X.shape[-1]))
    assert np.isfinite(pool.y).all() and np.ptp(pool.y) > 1e-6
    assert 1 <= len(pool.best_rows) < n / 10 and 1 <= len(pool.top_rows) <= max(1, round(0.01 * n))
    assert len(np.unique(pool.X.numpy(), axis=0)) == n, "a pool point is revealed once"
    again = SYNTHETIC[name](0)
    assert torch.equal(again.X, pool.X) and np.array_equal(again.y, pool.y)
    if name in DRAWN:
        assert not torch.equal(SYNTHETIC[name](1).X, pool.X)
