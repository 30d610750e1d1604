"""Fixtures for the surrogate tests: small synthetic problems with known noise, one torch thread."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

NOISE_STD = 0.1

#: Small, fast ensemble settings for tests (the defaults are sized for real data).
FAST_ENSEMBLE = {"ensemble": {"steps": 300, "n_members": 4, "hidden": 32}}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """CI has two cores shared by everyone's tests; one thread also makes timings reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def truth(X: torch.Tensor) -> torch.Tensor:
    """A smooth 2-D test function with values of order one."""
    return torch.sin(2 * math.pi * X[:, 0]) + 0.5 * X[:, 1] ** 2


def noisy_data(n: int, seed: int, noise_std: float = NOISE_STD) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=torch.double)
    y = truth(X) + noise_std * torch.randn(n, generator=gen, dtype=torch.double)
    return X, y.unsqueeze(-1)


@pytest.fixture
def small_data() -> tuple[torch.Tensor, torch.Tensor]:
    return noisy_data(40, seed=0)


@pytest.fixture
def make_data():
    """``make_data(n, seed, noise_std=NOISE_STD) -> (X, Y)`` on :func:`truth`."""
    return noisy_data


@pytest.fixture
def fast_settings() -> dict:
    return {k: dict(v) for k, v in FAST_ENSEMBLE.items()}
