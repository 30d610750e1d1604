"""Fixtures for the lab adapters: a real simulated lab on a loopback port, and jobs to send it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab_adapters.simlab.client import SimLabAdapter
from lab_adapters.simlab.inprocess import SimLabHandle, running_simlab
from matloop.types import Candidate, JobRequest, make_idempotency_key

TOKEN = "test-token"


@pytest.fixture
def simlab() -> Iterator[SimLabHandle]:
    """A quiet lab (no faults) serving every scenario; 1 lab hour = 36 ms."""
    with running_simlab(token=TOKEN, time_scale=1e-5, seed=1) as handle:
        yield handle


@pytest.fixture
def adapter(simlab: SimLabHandle) -> Iterator[SimLabAdapter]:
    with SimLabAdapter(simlab.url, TOKEN, timeout=5.0, backoff=0.01, backoff_max=0.05) as client:
        yield client


@pytest.fixture
def slow_adapter() -> Iterator[SimLabAdapter]:
    """An adapter on a lab where 1 lab hour = 36 s, so an experiment stays open as long as a test needs."""
    with running_simlab(token=TOKEN, time_scale=1e-2, seed=1) as handle:
        with SimLabAdapter(handle.url, TOKEN, timeout=5.0, backoff=0.01, backoff_max=0.05) as client:
            yield client


def branin_job(x1: float, x2: float, *, campaign: str = "test", attempt: int = 0) -> JobRequest:
    candidate = Candidate.point({"x1": x1, "x2": x2})
    return JobRequest(
        idempotency_key=make_idempotency_key(campaign, candidate.fingerprint, "branin", attempt),
        campaign=campaign,
        candidate=candidate,
        fidelity="branin",
        properties=["y"],
        attempt=attempt,
    )


def oer_job(loads: dict[str, float], *, campaign: str = "test", plate: str = "3496") -> JobRequest:
    candidate = Candidate.point(loads)
    return JobRequest(
        idempotency_key=make_idempotency_key(campaign, candidate.fingerprint, "robot", 0),
        campaign=campaign,
        candidate=candidate,
        fidelity="robot",
        properties=["overpotential"],
        options={"scenario": f"oer_plate_{plate}"},
    )
