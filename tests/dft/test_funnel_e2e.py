"""The ``funnel-binaries`` template run by ``matloop run`` for two iterations: real CHGNet in-process, real GPAW.

Formation energy is measured at two fidelities, CHGNet (``mlip``) and GPAW through the
local queue (``dft``): the initial design's first pick at both (the other by CHGNet only),
every later pick at the one fidelity the cost-aware choice stored on its batch item
(``agent/selection/fidelity.py``).  Real PostgreSQL,
a real ``matloop run`` process, a real Prefect API.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from agent.store import Database
from agent.store.models import BatchItemRecord, CampaignRecord, JobRecord, MeasurementRecord
from tests.support.processes import matloop_env, run_matloop

from .dft_helpers import REPO

TEMPLATE = REPO / "agent" / "templates" / "funnel-binaries.yaml"


@pytest.mark.gpaw
@pytest.mark.slow
def test_funnel_binaries_runs_two_iterations_across_both_fidelities(
    gpaw: None, prefect_api: str, pg_url: str, tmp_path: Path
) -> None:
    data: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    data["budget"]["max_iterations"] = 2
    data["adapters"]["dft"]["work_dir"] = str(tmp_path / "dft")
    data["adapters"]["mlip"]["work_dir"] = str(tmp_path / "mlip")
    data["adapters"]["mlip"]["cache_dir"] = str(tmp_path / "mlip-cache")
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(yaml.safe_dump(data, sort_keys=False))
    env = matloop_env(database_url=pg_url, data_dir=tmp_path / "data", prefect_api=prefect_api)
    done = run_matloop(["run", str(campaign_file)], env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]

    db = Database(pg_url)
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == "funnel-binaries"))
        assert record is not None and record.status == "stopped", (record and record.stop_reason, done.stdout[-2000:])
        jobs = list(session.scalars(select(JobRecord).where(JobRecord.campaign_id == record.id)))
        measurements = list(session.scalars(select(MeasurementRecord).where(MeasurementRecord.job_id.in_(
            [j.id for j in jobs]))))
        items = {i.id: i for i in session.scalars(select(BatchItemRecord).where(BatchItemRecord.id.in_(
            [j.batch_item_id for j in jobs])))}
    db.dispose()

    assert {j.adapter for j in jobs} == {"mlip", "dft"}, [(j.adapter, j.status) for j in jobs]
    assert len({j.idempotency_key for j in jobs}) == len(jobs)
    assert all(j.status in ("succeeded", "failed") for j in jobs), [(j.id, j.status) for j in jobs]
    by_adapter: dict[str, dict[int, float]] = {"mlip": {}, "dft": {}}
    adapter_of = {j.id: j.adapter for j in jobs}
    for m in measurements:
        if m.property == "formation_energy" and m.value is not None:
            by_adapter[adapter_of[m.job_id]][m.job_id] = m.value
    assert by_adapter["mlip"] and by_adapter["dft"], [(j.adapter, j.status, j.error) for j in jobs]
    for values in by_adapter.values():
        assert all(math.isfinite(v) and -6.0 < v < 3.0 for v in values.values())
    fidelity_of = {"mlip": "chgnet", "dft": "gpaw-fast"}
    for item_id, item in items.items():
        at = {j.adapter for j in jobs if j.batch_item_id == item_id}
        if item.fidelity is None:  # the initial design's paired point: measured at every fidelity
            assert at == {"mlip", "dft"}, (item_id, at)
        else:  # a later pick: at the fidelity chosen for it, and its reason says why
            assert [fidelity_of[a] for a in at] == [item.fidelity], (item_id, at, item.fidelity)
            assert item.fidelity in item.reason, item.reason
    first_batch = min(item.batch_id for item in items.values())
    later = [item for item in items.values() if item.batch_id != first_batch]
    assert later and all(item.fidelity is not None for item in later), "the second iteration chose no fidelity"
