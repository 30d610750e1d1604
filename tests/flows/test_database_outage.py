"""PostgreSQL goes down for 45 s in the middle of a campaign: the run rides it out and loses nothing.

A real server of its own (stopping the shared one would break the other tests), stopped with
``pg_ctl -m immediate`` (every connection dropped, as in a crash or a failover) while ``matloop run``
waits for the lab, and started again a few seconds later on the same data.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.spec import dump_campaign
from agent.store import Database
from agent.store.migrate import upgrade
from agent.store.models import CampaignRecord, JobRecord, MeasurementRecord
from tests.loop.conftest import branin_spec
from tests.support.postgres import start_postgres
from tests.support.processes import REPO, matloop_argv, matloop_env, wait_for


@pytest.fixture
def own_postgres() -> Any:
    try:
        server = start_postgres()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(f"no PostgreSQL server can be started here: {exc}")
    yield server
    server.stop()


def _jobs(url: str) -> int:
    db = Database(url)
    try:
        with db.reading() as session:
            return len(list(session.scalars(select(JobRecord))))
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_campaign_survives_the_database_dropping_mid_run(
    prefect_api: str, own_postgres: Any, tmp_path: Path
) -> None:
    from lab_adapters.simlab.inprocess import running_simlab

    url = own_postgres.create_database("outage")
    upgrade(url)
    # 0.1 lab hours per evaluation at 1/360: one second per experiment, so the run is waiting when the database goes
    with running_simlab(scenarios=["branin"], time_scale=1 / 360) as lab:
        spec = branin_spec(lab.url, lab.token, name="branin-db-outage")
        campaign_file = tmp_path / "campaign.yaml"
        campaign_file.write_text(dump_campaign(spec))
        env = matloop_env(database_url=url, data_dir=tmp_path / "data", prefect_api=prefect_api, PREFECT_LOGGING_LEVEL="INFO")
        with subprocess.Popen(matloop_argv("run", str(campaign_file)), cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as run:
            wait_for(lambda: _jobs(url) >= 4, 120, "the first batch to be dispatched")
            own_postgres.outage(45.0)  # longer than the first retry policy (42 s) could ride out
            out, err = run.communicate(timeout=300)
        experiments = lab.lab.list(limit=1000)
    assert run.returncode == 0, err[-4000:]
    # the outage really hit the run, inside a step (Prefect logs each failed try at INFO) or between two steps
    # (agent/loop/outage.py warns), and the retries rode it out
    assert ("Task run failed with exception: DatabaseUnreachable" in err
            or "database unavailable between steps" in err), err[-4000:]
    assert "budget spent: 12 of 12 experiments" in out
    db = Database(url)
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == spec.name))
        jobs = list(session.scalars(select(JobRecord)))
        measurements = list(session.scalars(select(MeasurementRecord)))
    db.dispose()
    assert record is not None and record.status == "stopped"
    assert len(jobs) == 12 and {j.status for j in jobs} == {"succeeded"}
    assert len(measurements) == 12 and not any(m.failed for m in measurements)
    assert {e.executions for e in experiments} == {1} and len(experiments) == 12  # nothing ran twice


def test_a_read_between_steps_waits_for_the_database(own_postgres: Any) -> None:
    """The loop's reads between steps (which step an iteration is at) ride out an outage as the steps do.

    The server goes down (``pg_ctl -m immediate``) for 6 s; a read that starts while it is down is tried again on
    its schedule and answers once the server is back, instead of ending the run.
    """
    from sqlalchemy import text

    from agent.loop.outage import read_through_outage
    from agent.store import DatabaseUnreachable

    url = own_postgres.create_database("between")
    db = Database(url)
    db.ping()
    tries: list[int] = []

    def read(session: Any) -> int:
        tries.append(1)
        return session.execute(text("SELECT 41 + 1")).scalar_one()

    with own_postgres.down_for(6.0):
        db.engine.dispose()  # no pooled connection from the ping: the read starts on a server that refuses it
        assert read_through_outage(db, read, delays=(1, 2, 4, 8, 16)) == 42
    assert len(tries) >= 2  # it was down for the first try
    with pytest.raises(DatabaseUnreachable):  # an outage longer than the schedule still ends in the plain error
        own_postgres.stop()
        read_through_outage(db, read, delays=(0.1,))
    db.dispose()
