"""The ``dft-binaries`` template run end to end by ``matloop run``: crystals generated, computed with real GPAW.

Once through the local process queue (the template as shipped) and once through
the real single-node SLURM (the template with ``type: slurm``), each on the real
PostgreSQL, each a real ``matloop run`` process talking to a real Prefect API.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from agent.store import Database
from agent.store.models import CampaignRecord, CandidateRecord, JobRecord, MeasurementRecord
from tests.support.processes import matloop_env, run_matloop

from .dft_helpers import REPO

TEMPLATE = REPO / "agent" / "templates" / "dft-binaries.yaml"


def _campaign_file(tmp_path: Path, queue: str) -> Path:
    data: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    data["name"] = f"dft-binaries-{queue}"
    adapter = data["adapters"]["dft"]
    adapter["type"] = queue
    adapter["work_dir"] = str(tmp_path / "dft")
    if queue == "slurm":
        adapter.pop("max_workers", None)  # SLURM's node decides how many run at once
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.gpaw
@pytest.mark.slow
@pytest.mark.parametrize("queue", ["local", "slurm"])
def test_dft_binaries_campaign_runs_end_to_end(
    queue: str, gpaw: None, prefect_api: str, pg_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if queue == "slurm":
        request.getfixturevalue("slurm")
    campaign_file = _campaign_file(tmp_path, queue)
    env = matloop_env(database_url=pg_url, data_dir=tmp_path / "data", prefect_api=prefect_api)
    done = run_matloop(["run", str(campaign_file)], env, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]

    db = Database(pg_url)
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == f"dft-binaries-{queue}"))
        assert record is not None and record.status == "stopped", (record and record.stop_reason, done.stdout[-2000:])
        jobs = list(session.scalars(select(JobRecord).where(JobRecord.campaign_id == record.id)))
        measurements = list(session.scalars(select(MeasurementRecord).where(MeasurementRecord.job_id.in_(
            [j.id for j in jobs]))))
        candidates = {c.id: c for c in session.scalars(select(CandidateRecord).where(
            CandidateRecord.campaign_id == record.id))}
    db.dispose()

    assert 2 <= len(jobs) <= 8 and len({j.idempotency_key for j in jobs}) == len(jobs)
    assert all(j.status in ("succeeded", "failed") for j in jobs), [(j.id, j.status) for j in jobs]
    succeeded = [j for j in jobs if j.status == "succeeded"]
    assert succeeded, [(j.id, j.status, j.error) for j in jobs]
    by_job: dict[int, dict[str, float]] = {}
    for m in measurements:
        by_job.setdefault(m.job_id, {})[m.property] = m.value
    for job in succeeded:
        values = by_job[job.id]
        assert set(values) >= {"formation_energy", "band_gap"}
        assert math.isfinite(values["formation_energy"]) and -6.0 < values["formation_energy"] < 3.0
        assert values["band_gap"] >= 0.0
        structure = candidates[job.candidate_id].representation["structure"]
        species = {site["species"][0]["element"] for site in structure["sites"]}
        assert species & {"Li", "Na", "K", "Cu", "Ag"} and species & {"F", "Cl"}
    assert all(j.external_id for j in jobs)  # each went through the queue under its own id
    for m in measurements:  # ... and through the queue this test asked for (SLURM job ids are numbers)
        assert m.raw["scheduler"] == queue, m.raw
        if queue == "slurm":
            assert all(str(a["scheduler_id"]).isdigit() for a in m.raw["attempts"]), m.raw["attempts"]
