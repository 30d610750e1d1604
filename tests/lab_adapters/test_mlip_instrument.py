"""The in-process MLIP instrument with real CHGNet: batched jobs, repeatable calls, results that outlive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from agent.spec import Campaign
from lab_adapters.mlip import MLIPAdapter, make_mlip_adapter
from matloop.types import AdapterError, Candidate, CandidateKind, JobRequest, JobStatus, make_idempotency_key


def job_for(structure: Structure, properties: list[str], tag: str) -> JobRequest:
    candidate = Candidate(kind=CandidateKind.STRUCTURE, structure=structure.as_dict(), origin="test")
    key = make_idempotency_key("mlip-tests", candidate.fingerprint + tag, "mlip", 0)
    return JobRequest(idempotency_key=key, campaign="mlip-tests", candidate=candidate, fidelity="mlip",
                      properties=properties)


def rocksalt(a: float = 5.6) -> Structure:
    return Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), ["Na", "Cl"],
                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def cesium_chloride(a: float = 3.4) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> MLIPAdapter:
    base: Path = tmp_path_factory.mktemp("mlip")
    return MLIPAdapter(work_dir=str(base / "jobs"), cache_dir=str(base / "cache"), fmax=0.1, steps=100)


@pytest.mark.slow
def test_jobs_submitted_together_are_relaxed_and_survive_a_restart(config):
    instrument = make_mlip_adapter("mlip", config)
    jobs = [job_for(rocksalt(), ["formation_energy", "volume_per_atom"], "rs"),
            job_for(cesium_chloride(), ["formation_energy"], "cscl")]
    ids = [instrument.submit(j) for j in jobs]
    assert ids == [j.idempotency_key for j in jobs]
    assert [instrument.submit(j) for j in jobs] == ids  # a repeated submit is the same job
    assert instrument.poll(ids) == {i: JobStatus.SUCCEEDED for i in ids}
    rs, cscl = (instrument.fetch(i) for i in ids)
    assert rs.status == JobStatus.SUCCEEDED and set(rs.properties) == {"formation_energy", "volume_per_atom"}
    # NaCl: about -2.1 eV/atom in experiment and DFT; rocksalt is the ground state, CsCl-type above it
    assert -2.6 < rs.properties["formation_energy"].value < -1.6
    assert rs.properties["formation_energy"].units == "eV/atom"
    assert cscl.properties["formation_energy"].value > rs.properties["formation_energy"].value
    assert rs.raw["potential"].startswith("chgnet") and rs.raw["converged"]
    assert rs.raw["settings"]["optimizer"] == "bfgs-elastic"  # the screen's default, recorded with the result

    restarted = make_mlip_adapter("mlip", config)  # a resumed run: a new process, the same work dir
    assert restarted.poll(ids) == {i: JobStatus.SUCCEEDED for i in ids}
    assert restarted.fetch(ids[0]) == rs
    assert restarted._screen is None  # read back from disk, nothing relaxed again
    restarted.cancel(ids[0])  # a finished job stays finished
    assert restarted.fetch(ids[0]).status == JobStatus.SUCCEEDED


def test_what_it_cannot_do_is_said_in_a_sentence(config):
    instrument = make_mlip_adapter("mlip", config)
    with pytest.raises(AdapterError, match=r"cannot measure \['band_gap'\]"):
        instrument.submit(job_for(rocksalt(), ["band_gap"], "gap"))
    empty = Candidate(kind=CandidateKind.STRUCTURE, structure={"lattice": "nonsense"}, origin="test")
    with pytest.raises(AdapterError, match="not a pymatgen Structure"):
        instrument.submit(JobRequest(idempotency_key="k1", campaign="c", candidate=empty, fidelity="mlip",
                                     properties=["formation_energy"]))
    assert instrument.poll(["never-submitted", "../escape"]) == {"never-submitted": JobStatus.LOST,
                                                                 "../escape": JobStatus.LOST}
    job = job_for(rocksalt(5.0), ["formation_energy"], "cancelled")
    instrument.submit(job)
    instrument.cancel(job.idempotency_key)
    instrument.cancel(job.idempotency_key)
    result = instrument.fetch(job.idempotency_key)
    assert result.status == JobStatus.CANCELLED and instrument._screen is None  # nothing was relaxed


def test_a_campaign_names_it_with_type_mlip():
    spec = {
        "name": "m", "space": {"type": "crystal", "prototypes": ["rocksalt"], "sites": {"A": ["Na"], "X": ["Cl"]}},
        "objectives": [{"property": "formation_energy", "goal": "minimize"}],
        "adapters": {"mlip": {"type": "mlip", "fmax": 0.05, "batch_size": 8}},
        "measurements": [{"properties": ["formation_energy"], "adapter": "mlip", "cost": 0.01}],
        "budget": {"max_experiments": 4},
    }
    campaign = Campaign.model_validate(spec)
    assert isinstance(campaign.adapters["mlip"], MLIPAdapter) and campaign.adapters["mlip"].batch_size == 8
    assert campaign.adapters["mlip"].optimizer == "bfgs-elastic"


def test_its_optimizers_are_the_screens():
    """The adapter offers exactly the optimisers the relaxer has, and passes the one chosen to it."""
    from typing import get_args

    from surrogates.mlip import MLIPSettings
    from surrogates.mlip.batched import OPTIMIZERS

    offered = set(get_args(MLIPAdapter.model_fields["optimizer"].annotation))
    assert offered == set(get_args(MLIPSettings.model_fields["optimizer"].annotation)) == set(OPTIMIZERS)
    instrument = make_mlip_adapter("mlip", MLIPAdapter(optimizer="fire"))
    screen = instrument._screening()
    assert screen.settings.optimizer == "fire" and screen.relaxer._step_all is OPTIMIZERS["fire"]
    with pytest.raises(ValueError, match="optimizer"):
        MLIPAdapter(optimizer="lbfgs")
