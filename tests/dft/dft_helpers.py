"""Structures, jobs and waiting: helpers the DFT tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pymatgen.core import Lattice, Structure

from lab_adapters.dft import DFTQueueAdapter
from matloop.types import Candidate, CandidateKind, JobRequest, JobStatus, make_idempotency_key

REPO = Path(__file__).resolve().parents[2]

#: The smallest settings that still give physical numbers: seconds per job on one core.
TINY_RECIPE: dict[str, Any] = {"code": "gpaw", "ecut": 200, "kpoint_density": 1.5, "empty_bands": 4}

AdapterFactory = Callable[..., DFTQueueAdapter]


def nacl() -> Structure:
    """Rock-salt NaCl, primitive cell (2 atoms)."""
    conv = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return conv.get_primitive_structure()


def silicon() -> Structure:
    """Diamond Si, primitive cell (2 atoms)."""
    a = 5.43 / 2
    return Structure(Lattice([[0, a, a], [a, 0, a], [a, a, 0]]), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def job_for(structure: Structure, properties: Sequence[str], *, campaign: str = "dft-tests", fidelity: str = "tiny",
            options: dict[str, Any] | None = None, attempt: int = 0) -> JobRequest:
    candidate = Candidate(kind=CandidateKind.STRUCTURE, structure=structure.as_dict(), origin="test")
    key = make_idempotency_key(campaign, candidate.fingerprint + repr(sorted((options or {}).items())), fidelity,
                               attempt)
    return JobRequest(idempotency_key=key, campaign=campaign, candidate=candidate, fidelity=fidelity,
                      properties=list(properties), attempt=attempt, options=options or {})


def wait_terminal(adapter: DFTQueueAdapter, ids: Sequence[str], timeout: float = 90.0,
                  until: Callable[[dict[str, JobStatus]], bool] | None = None) -> dict[str, JobStatus]:
    """Poll until every job is terminal (or ``until`` holds); fail the test with the last states on timeout."""
    deadline = time.monotonic() + timeout
    states: dict[str, JobStatus] = {}
    while time.monotonic() < deadline:
        states = adapter.poll(ids)
        if (until or (lambda s: all(v.is_terminal for v in s.values())))(states):
            return states
        time.sleep(0.3)
    pytest.fail(f"jobs did not finish within {timeout:g} s: {states}")
