"""SIGKILL a real campaign process at the instants of dispatch, resume it, and find each job charged exactly once.

The process runs the loop (``tests/loop/ledger_run.py``) against PostgreSQL; the lab runs in this test process
and outlives every kill, so it testifies which keys ran. The budget is in cost only (12 experiments' worth), so
a double charge would also stop the campaign early.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.spec import dump_campaign
from agent.store import Database
from agent.store.ledger import spent
from agent.store.migrate import upgrade
from agent.store.models import CampaignRecord, JobRecord, LedgerEntryRecord
from tests.loop.conftest import branin_spec
from tests.support.processes import REPO, matloop_env

#: In the order the campaign reaches them (name:pass, passes counted anew by each process).
KILL_POINTS = [
    "dispatch.before_commit:1",  # iteration 1: jobs and their charges written, the commit never happens
    "dispatch.after_submit:2",  # iteration 1 again: the lab accepted a job, its id is not recorded
    "dispatch.after_create:2",  # iteration 1 finished; iteration 2: jobs and charges committed, nothing submitted
    "dispatch.before_commit:2",  # iteration 2 resumed (nothing new to charge); iteration 3 dies before its commit
]


def _run(campaign_file: Path, url: str, env: dict[str, str], kill_at: str | None) -> subprocess.CompletedProcess[str]:
    run_env = {**env, **({"MATLOOP_KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run([sys.executable, str(REPO / "tests" / "loop" / "ledger_run.py"), str(campaign_file), url],
                          cwd=REPO, env=run_env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_sigkill_at_dispatch_never_charges_a_job_twice(pg_url: str, simlab: Any, tmp_path: Path) -> None:
    measures = [{"properties": ["y"], "adapter": "lab", "fidelity": "branin", "cost": 2.5,
                 "options": {"scenario": "branin"}}]
    spec = branin_spec(simlab.url, simlab.token, name="ledger-killed", budget={"max_cost": 30.0},
                       measurements=measures)
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(dump_campaign(spec))
    upgrade(pg_url)
    env = matloop_env(database_url=pg_url, data_dir=tmp_path / "data", prefect_api=None)
    db = Database(pg_url)
    for point in KILL_POINTS:
        killed = _run(campaign_file, pg_url, env, point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-3000:])
        with db.reading() as session:  # after every kill: a job is charged iff it is stored, and once
            charged = list(session.scalars(select(LedgerEntryRecord.job_id).where(LedgerEntryRecord.kind == "charge")))
            assert sorted(charged) == sorted(session.scalars(select(JobRecord.id))), point
    final = _run(campaign_file, pg_url, env, None)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "budget spent: cost 30 of 30 cost units, not enough for another experiment" in final.stdout

    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == spec.name))
        assert record is not None and record.status == "stopped"
        jobs = list(session.scalars(select(JobRecord)))
        entries = list(session.scalars(select(LedgerEntryRecord)))
        total = spent(session, record.id)
    db.dispose()
    assert len(jobs) == 12 and {j.status for j in jobs} == {"succeeded"}
    assert sorted(e.job_id for e in entries) == sorted(j.id for j in jobs)  # one charge each, no refund
    assert {e.kind for e in entries} == {"charge"} and total == 30.0
    experiments = simlab.lab.list(limit=1000)
    assert sorted(e.idempotency_key for e in experiments) == sorted(j.idempotency_key for j in jobs)
    assert {e.executions for e in experiments} == {1}, "a key ran more than once"
