"""The synthetic benchmark pools build as a campaign's own parameters and space, sanely, the same way from the
same seed, and the ask/tell API takes them as they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent import Recommender
from benchmarks._common import campaign_spec
from benchmarks.problems import PROBLEMS
from benchmarks.problems import SPLIT as ALL_SPLITS
from benchmarks.problems_synthetic import DEV_ONLY, SOURCE, SPLIT, SYNTHETIC, GaussianWell

#: Pools drawn from a seed (the others are grids, the same whatever the seed).
DRAWN = {"mixed_ackley", "mixed_styblinski", "needle_dropwave", "needle_michalewicz", "long_levy6", "needle_bump4",
         "floor_rosenbrock7"}
KINDS = ("simplex", "mixed", "needle", "long", "floor")


def test_every_pool_has_a_split_and_a_source_and_the_splits_are_halves():
    assert set(SPLIT) == set(SYNTHETIC) == set(SOURCE)
    assert all("licence" in SOURCE[name] for name in SOURCE)
    paired = {n: s for n, s in SPLIT.items() if n not in DEV_ONLY}
    assert sorted(paired.values()) == ["dev"] * (len(paired) // 2) + ["heldout"] * (len(paired) // 2)
    for kind in ("simplex", "mixed", "needle"):  # each of these kinds of structure in both splits
        assert {paired[n] for n in paired if n.startswith(kind)} == {"dev", "heldout"}
    assert all(SPLIT[n] == "dev" for n in DEV_ONLY)
    assert all(n.startswith(KINDS) for n in SYNTHETIC)


def test_the_development_only_pools_use_no_held_out_function_family():
    held_out_sources = {SOURCE[n] for n, split in SPLIT.items() if split == "heldout"}
    assert not {SOURCE[n] for n in DEV_ONLY} & held_out_sources


@pytest.mark.parametrize("seed", range(10))
def test_the_well_holds_the_best_of_every_drawn_pool(seed):
    """Whatever the seed, the pool's best rows lie in the well, a handful of rows beat the bowl's minimum (0), and
    no row near the bowl's minimum does."""
    pool = SYNTHETIC["needle_bump4"](seed)
    x = pool.frame.to_numpy()
    best = x[sorted(pool.best_rows)]
    assert np.linalg.norm(best - np.array(GaussianWell.WELL), axis=1).max() < 0.2
    assert 5 <= int((pool.y < 0).sum()) <= 40
    near_bowl = np.linalg.norm(x - np.array(GaussianWell.BOWL), axis=1) < 0.3
    assert near_bowl.any() and pool.y[near_bowl].min() > 0


@pytest.mark.parametrize("seed", range(3))
def test_most_of_the_floored_pool_reads_exactly_the_floor_and_its_top_rows_lie_off_it(seed):
    """floor_rosenbrock7 is the development side's MoS2: most rows exactly 0 (the floor is the worst value of the
    minimised pool), its top rows above it, its best alone."""
    pool = SYNTHETIC["floor_rosenbrock7"](seed)
    assert 0.55 <= float((pool.y == 0).mean()) <= 0.70
    assert len(pool.best_rows) == 1
    assert (pool.y[sorted(pool.top_rows)] < 0).all() and (pool.y <= 0).all()


def test_the_registry_holds_them_with_their_split():
    assert {n: PROBLEMS[n] for n in SYNTHETIC} == SYNTHETIC
    assert {n: ALL_SPLITS[n] for n in SYNTHETIC} == SPLIT


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_each_pool_is_a_campaign_space_sane_and_reproducible(name):
    pool = SYNTHETIC[name](0)
    n = len(pool.y)
    assert pool.name == name and 500 <= n <= 5000
    assert list(pool.frame.columns) == [p["name"] for p in pool.space["parameters"]] and len(pool.frame) == n
    types = {p["type"] for p in pool.space["parameters"]}
    if name.startswith("simplex"):  # fractions of one gridded mixture, as the OER plates' space
        assert types == {"continuous"} and len(pool.space["simplex"]) == 1
        group = pool.space["simplex"][0]
        assert group["parameters"] == list(pool.frame.columns) and group["step"] is not None
        assert np.allclose(pool.frame.sum(axis=1), group["total"])
    elif name.startswith("mixed"):
        assert types == {"categorical", "continuous"} and "simplex" not in pool.space
    else:
        assert types == {"continuous"} and "simplex" not in pool.space
    assert pool.baybe_frame is None
    assert np.isfinite(pool.y).all() and np.ptp(pool.y) > 1e-6
    assert 1 <= len(pool.best_rows) < n / 10 and 1 <= len(pool.top_rows) <= max(1, round(0.01 * n))
    assert not pool.frame.duplicated().any(), "a pool point is revealed once"
    again = SYNTHETIC[name](0)
    pd.testing.assert_frame_equal(again.frame, pool.frame)
    assert np.array_equal(again.y, pool.y)
    if name in DRAWN:
        assert not SYNTHETIC[name](1).frame.equals(pool.frame)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_the_ask_tell_api_takes_the_pool_as_a_campaign_would(name):
    """Every row is checked against the campaign file's space when the recommender is made; its first batch
    (the initial design) names rows of the pool."""
    pool = SYNTHETIC[name](0)
    with Recommender(campaign_spec(pool, seed=0, q=4, n_init=4, budget=20), pool.frame) as recommender:
        picks = recommender.recommend(4)
    assert len(set(picks.index)) == 4 and set(picks.index) <= set(range(len(pool.y)))
    for label, row in picks.iterrows():
        assert pool.frame.loc[label].tolist() == [row[c] for c in pool.frame.columns]
