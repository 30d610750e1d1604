"""The model's recommendation: the measured candidate with the best posterior mean, not the luckiest reading."""

from __future__ import annotations

import math

import torch

from agent.loop.recommend import recommend
from agent.loop.state import Observations
from matloop.types import Candidate
from surrogates import fit_surrogate
from tests.loop.conftest import branin_spec


def _spec(properties: list[str], **overrides):
    """The loop tests' Branin campaign, with a measurement that produces ``properties``."""
    measurement = {"properties": properties, "adapter": "lab", "fidelity": "branin", "options": {"scenario": "branin"}}
    return branin_spec(measurements=[measurement], **overrides)


def _observations(xs: list[float], ys: list[list[float]], properties: list[str]) -> Observations:
    return Observations(
        candidates=[Candidate.point({"x1": x, "x2": 0.0}) for x in xs],
        candidate_ids=list(range(len(xs))),
        properties=properties,
        values=ys,
        variances=[[math.nan] * len(properties) for _ in xs],
    )


def _noisy_bowl(seed: int = 6) -> tuple[list[float], list[float]]:
    """A bowl (minimum at x=0.5) measured at 41 points with noise 0.03; with seed 6 the lowest *reading* is at 0.375."""
    gen = torch.Generator().manual_seed(seed)
    xs = [i / 40 for i in range(41)]
    return xs, [(x - 0.5) ** 2 + 0.03 * float(torch.randn(1, generator=gen)) for x in xs]


def test_the_recommendation_pools_neighbours_instead_of_trusting_the_lowest_reading() -> None:
    xs, ys = _noisy_bowl()
    campaign = branin_spec()  # one objective "y", minimize
    obs = _observations(xs, [[y] for y in ys], ["y"])
    X = torch.tensor([[x, 0.0] for x in xs], dtype=torch.double)
    fitted = fit_surrogate(X, torch.tensor(ys, dtype=torch.double).unsqueeze(-1), kind="gp", seed=0)
    pick = recommend(campaign, obs, fitted, X)
    assert pick is not None
    assert xs[ys.index(min(ys))] == 0.375  # noise made a point 0.125 from the bottom the best measurement ...
    assert abs(pick["content"]["x1"] - 0.5) < 0.05  # ... the posterior mean points back to the bottom
    assert pick["measured"] == ys[xs.index(pick["content"]["x1"])] and pick["std"] > 0


def test_infeasible_or_unmeasured_candidates_are_never_recommended() -> None:
    xs, ys = _noisy_bowl()
    campaign = _spec(["y", "c"], constraints=["c < 1"])
    # c breaks the constraint near the bowl's bottom; one row has no objective value at all
    values = [[y, 5.0 if 0.4 <= x <= 0.6 else 0.0] for x, y in zip(xs, ys, strict=True)]
    values[0][0] = math.nan
    obs = _observations(xs, values, ["y", "c"])
    X = torch.tensor([[x, 0.0] for x in xs], dtype=torch.double)
    Y = torch.tensor(values, dtype=torch.double)
    fitted = fit_surrogate(X, Y, kind="gp", seed=0)
    pick = recommend(campaign, obs, fitted, X)
    assert pick is not None
    assert not 0.4 <= pick["content"]["x1"] <= 0.6 and pick["content"]["x1"] != xs[0]


def test_no_recommendation_with_several_objectives() -> None:
    campaign = _spec(["y", "z"], objectives=[{"property": "y", "goal": "minimize"}, {"property": "z", "goal": "maximize"}])
    obs = _observations([0.0, 1.0], [[0.0, 1.0], [1.0, 0.0]], ["y", "z"])
    assert recommend(campaign, obs, object(), torch.zeros(2, 2, dtype=torch.double)) is None
