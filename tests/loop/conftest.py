"""Fixtures for the loop tests: a small campaign on the simulated lab's Branin scenario."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from agent.spec import Campaign
from tests.support.labs import token_env


def branin_spec(url: str | None = None, token: str | None = None, **overrides: Any) -> Campaign:
    """Branin on a 0.5-step grid (961 points): small enough to be quick, big enough to need a model."""
    data: dict[str, Any] = {
        "name": "branin-loop",
        "seed": 0,
        "space": {"type": "parametric", "parameters": [
            {"name": "x1", "type": "continuous", "bounds": [-5.0, 10.0], "step": 0.5},
            {"name": "x2", "type": "continuous", "bounds": [0.0, 15.0], "step": 0.5},
        ]},
        "objectives": [{"property": "y", "goal": "minimize"}],
        "budget": {"max_experiments": 12},
        "batch_size": 4,
        "initial_design_size": 4,
        "adapters": {"lab": {"type": "simlab", "url": url, **({"token_env": token_env(token)} if token else {})}},
        "measurements": [{"properties": ["y"], "adapter": "lab", "fidelity": "branin",
                          "options": {"scenario": "branin"}}],
        "generator": {"type": "grid"},
        "surrogate": {"type": "gp"},
    }
    data.update(overrides)
    return Campaign.model_validate(data)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def simlab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["branin"], time_scale=1e-4) as handle:
        yield handle
