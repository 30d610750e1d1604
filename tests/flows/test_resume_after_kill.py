"""Kill the real campaign process with SIGKILL at several instants of an iteration, resume, lose nothing.

The process is ``matloop run --resume`` in a subprocess; ``MATLOOP_KILL_AT``
names the instant it dies (``agent.loop.faults``).  The lab runs in this test
process and outlives every kill, so it can testify: every idempotency key was
executed exactly once, and every result reached the database.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from agent.spec import dump_campaign
from agent.store import Database
from agent.store.models import CampaignRecord, JobRecord, MeasurementRecord
from tests.loop.conftest import branin_spec
from tests.support.processes import matloop_env, run_matloop

#: Instants to die at, in the order the campaign reaches them (name:pass).
KILL_POINTS = [
    "dispatch.after_submit:2",  # the lab accepted a job, the database has not heard of its id
    "sync.before_commit:1",  # results fetched from the lab, not yet stored
    "dispatch.after_create:2",  # jobs written with their keys, nothing submitted (second iteration)
]


def _run(campaign_file: Path, env: dict[str, str], kill_at: str | None) -> subprocess.CompletedProcess[str]:
    run_env = dict(env)
    if kill_at:
        run_env["MATLOOP_KILL_AT"] = kill_at
    return run_matloop(["run", str(campaign_file), "--resume"], run_env)


@pytest.mark.slow
def test_sigkill_at_any_step_then_resume_runs_every_key_once(
    prefect_api: str, pg_url: str, simlab: Any, tmp_path: Path
) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-killed")
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(dump_campaign(spec))
    assert yaml.safe_load(campaign_file.read_text())["adapters"]["lab"]["url"] == simlab.url
    env = matloop_env(database_url=pg_url, data_dir=tmp_path / "data", prefect_api=prefect_api)
    for point in KILL_POINTS:
        killed = _run(campaign_file, env, point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-3000:])
    final = _run(campaign_file, env, None)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "budget spent: 12 of 12 experiments" in final.stdout

    db = Database(pg_url)
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == spec.name))
        assert record is not None and record.status == "stopped"
        jobs = list(session.scalars(select(JobRecord)))
        measurements = list(session.scalars(select(MeasurementRecord)))
    db.dispose()
    assert len(jobs) == 12 and {j.status for j in jobs} == {"succeeded"}
    experiments = simlab.lab.list(limit=1000)
    assert sorted(e.idempotency_key for e in experiments) == sorted(j.idempotency_key for j in jobs)
    assert {e.executions for e in experiments} == {1}, "a key ran more than once"
    assert {e.id for e in experiments} == {j.external_id for j in jobs}
    assert {m.job_id for m in measurements} == {j.id for j in jobs} and len(measurements) == 12
