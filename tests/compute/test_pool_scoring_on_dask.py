"""Scoring a large pool on a real Dask LocalCluster (2 single-threaded workers) picks what the in-process run picks.

One campaign state (a parametric space, 30 measured points with an objective and a constrained property, a GP per
property with its recalibration, a pool of 40,000 candidates and two pending jobs) goes through the select step's
pool-scoring path twice: the pool's features and the pre-screen's posterior moments in chunks, once in this
process and once as tasks on the cluster's workers. The features, the picks, their acquisition values and their
predictions must be the same, bit for bit.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from agent.loop.fit import points_of
from agent.selection import select_batch
from agent.selection.scoring import FEATURE_CHUNK, SCORE_CHUNK, pool_features, pool_moments
from agent.spec.objectives import Objective, OutcomeConstraint
from matloop.compute import fanning_out
from matloop.space import ParametricSpace
from matloop.types import Candidate
from surrogates import fit_surrogate
from surrogates.featurize import featurizer_for
from surrogates.moments import marginal_moments

SPACE = ParametricSpace.model_validate({"type": "parametric", "parameters": [
    {"name": "temperature", "type": "continuous", "bounds": [300.0, 900.0]},
    {"name": "time", "type": "continuous", "bounds": [0.5, 12.0]},
    {"name": "ratio", "type": "continuous", "bounds": [0.0, 1.0]},
    {"name": "solvent", "type": "categorical", "options": ["water", "ethanol", "dmf"]},
]})


def _points(n: int, seed: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=gen, dtype=torch.double).tolist()
    solvent = torch.randint(0, 3, (n,), generator=gen).tolist()
    return [{"temperature": 300.0 + 600.0 * a, "time": 0.5 + 11.5 * b, "ratio": c,
             "solvent": ("water", "ethanol", "dmf")[s]} for (a, b, c), s in zip(u, solvent, strict=True)]


def _measure(X: torch.Tensor) -> torch.Tensor:
    y = torch.sin(5 * X[:, 0]) + torch.cos(3 * X[:, 1]) * X[:, 2] + 0.3 * X[:, 3]
    z = X[:, :3].sum(-1) + 0.2 * X[:, 4]
    return torch.stack([y, z], -1)


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    feats = featurizer_for(SPACE)
    measured = [Candidate.point(p, origin="test") for p in _points(30, 1)]
    X_obs = feats.transform(points_of(measured))
    Y_obs = _measure(X_obs)
    fitted = fit_surrogate(X_obs, Y_obs, kind="gp", seed=3, cv_folds=2)
    pool = [Candidate.point(p, origin="test") for p in _points(40_000, 2)]
    pending = feats.transform(points_of(pool[:2]))
    return {"feats": feats, "fitted": fitted, "pool": pool, "X_obs": X_obs, "Y_obs": Y_obs, "pending": pending}


def _score(state: dict[str, Any]) -> tuple[torch.Tensor, list[Any]]:
    """The select step's scoring of the pool (agent/loop/select.py): features, then the batch."""
    X_pool = pool_features(state["feats"], state["pool"], read=points_of).to(torch.double)
    picks = select_batch(
        state["fitted"].model, X_pool, objectives=[Objective(property="y", goal="maximize")],
        constraints=[OutcomeConstraint(property="z", op="<", bound=1.6)], properties=["y", "z"], q=4,
        X_observed=state["X_obs"], Y_observed=state["Y_obs"], X_pending=state["pending"], seed=17)
    return X_pool, picks


def test_a_large_pool_scored_on_dask_gives_the_in_process_picks(state: dict[str, Any], on_dask: Any) -> None:
    from distributed import get_task_stream

    assert len(state["pool"]) > 2 * SCORE_CHUNK and len(state["pool"]) > 2 * FEATURE_CHUNK  # several chunks each
    X_here, here = _score(state)
    with fanning_out(on_dask), get_task_stream(client=on_dask.inner.runner.client) as stream:
        X_there, there = _score(state)
    assert on_dask.names == ["pool-features", "pool-moments"]
    ran = [(str(task["key"]), task["worker"]) for task in stream.data]
    assert sum(key.startswith("matloop-pool-moments-") for key, _ in ran) == -(-40_000 // SCORE_CHUNK)
    assert sum(key.startswith("matloop-pool-features-") for key, _ in ran) == -(-40_000 // FEATURE_CHUNK)
    assert len({worker for _, worker in ran}) == 2  # both workers scored part of the pool

    assert torch.equal(X_there, X_here)
    assert torch.equal(X_here, state["feats"].transform(points_of(state["pool"])))  # chunking changes no feature
    assert len(here) == 4 and len({p.index for p in here}) == 4
    assert [(p.index, p.rank, p.acquisition_value, p.mean, p.std, p.reason, p.features) for p in there] == \
        [(p.index, p.rank, p.acquisition_value, p.mean, p.std, p.reason, p.features) for p in here]
    assert {0, 1}.isdisjoint(p.index for p in here)  # the pending jobs' candidates are not picked again


def test_pool_moments_on_dask_equal_in_process_ones_bit_for_bit(state: dict[str, Any], on_dask: Any) -> None:
    model = state["fitted"].model
    X = pool_features(state["feats"], state["pool"][: SCORE_CHUNK + 7], read=points_of)  # a 7-row last chunk
    mean_here, var_here = pool_moments(model, X)
    with fanning_out(on_dask):
        mean_there, var_there = pool_moments(model, X)
    assert on_dask.names == ["pool-moments"]
    assert torch.equal(mean_there, mean_here) and torch.equal(var_there, var_here)
    whole_mean, _ = marginal_moments(model, X)
    assert torch.equal(mean_here, whole_mean)  # the chunks see the row blocks the whole pool does
    assert var_here.shape == (SCORE_CHUNK + 7, 2) and bool((var_here > 0).all())


def test_a_bad_row_past_the_first_chunk_is_named_by_its_pool_rows() -> None:
    feats = featurizer_for(SPACE)
    points = _points(FEATURE_CHUNK + 10, 4)
    del points[FEATURE_CHUNK + 3]["ratio"]
    with pytest.raises(ValueError) as info:
        pool_features(feats, points)
    assert str(info.value) == (f"in pool rows {FEATURE_CHUNK} to {FEATURE_CHUNK + 9}: "
                               "point 3 has no value for parameter 'ratio'")
    with pytest.raises(ValueError, match=r"^point 3 has no value for parameter 'ratio'$"):
        pool_features(feats, points[FEATURE_CHUNK:])  # one chunk: the featurizer's own message
