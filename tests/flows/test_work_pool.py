"""Campaigns on a process work pool: a real ``prefect server`` on PostgreSQL, ``matloop deploy``, two workers.

What a group running matloop on several machines does, on one: one PostgreSQL holds matloop's database and (in
another database) Prefect's; ``matloop deploy`` creates the ``matloop`` process pool and deploys the campaign
flow to it; two ``prefect worker start --pool matloop --limit 1`` processes take the runs, each with
``MATLOOP_DATABASE_URL`` in its own environment (the runs name no database).  Then:

* the same campaign started twice at once runs on one worker and is refused on the other, in one sentence
  naming the run that holds it (the one-run lease holds across workers);
* a second campaign runs on the other worker while the first is mid-iteration (its batch is out at the lab);
* the first campaign's worker is killed with its flow run (SIGKILL to both at once: a machine that dies); the
  campaign started again runs on the surviving worker and finishes, every experiment run once and stored once.

The lab runs in this test process and outlives the kill, so it can testify for the idempotency keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from agent.store import Database
from agent.store.models import CampaignRecord, IterationRecord, JobRecord, MeasurementRecord
from tests.conftest import PostgresServer
from tests.loop.conftest import branin_spec
from tests.support.prefect_pool import (
    PrefectServer,
    Workers,
    online_workers,
    start_prefect_server,
    start_worker,
    worker_of,
)
from tests.support.processes import matloop_env, wait_for

POOL = "matloop"
DEPLOYMENT = "matloop-campaign/campaign"
#: Branin on a coarse grid (121 points): what is under test is where runs go, not how well they search.
SPACE = {"type": "parametric", "parameters": [
    {"name": "x1", "type": "continuous", "bounds": [-5.0, 10.0], "step": 1.5},
    {"name": "x2", "type": "continuous", "bounds": [0.0, 15.0], "step": 1.5},
]}
RUN_SECONDS = 240  # per wait, on a loaded 2-core machine; the whole test takes far less when idle


@pytest.fixture
def pool_server(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[PrefectServer]:
    """A Prefect server on its own database of the test PostgreSQL; this process's client talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_prefect_server(postgres_server.create_database("prefect"), tmp_path / "prefect-home",
                                  tmp_path / "prefect-server.log")
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            yield server
    finally:
        server.process.stop()


def _deploy(*args: str, exit_code: int = 0) -> str:
    from cli import app  # in-process (typer's runner): the API is the one temporary_settings points at

    result = CliRunner().invoke(app, ["deploy", *args], catch_exceptions=False)
    assert result.exit_code == exit_code, result.output
    return result.output


def _start(spec: Any, **parameters: Any) -> UUID:
    from prefect.deployments import run_deployment

    run = run_deployment(DEPLOYMENT, timeout=0, parameters={
        "campaign": {"spec": spec.model_dump(mode="json")}, "poll_initial_seconds": 0.2, "poll_max_seconds": 1.0,
        **parameters})
    return run.id


def _state(flow_run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def _final(flow_run_id: UUID, what: str) -> Any:
    return wait_for(lambda: (s := _state(flow_run_id)) is not None and s.is_final() and s, RUN_SECONDS, what)


def _worker(flow_run_id: UUID, what: str) -> str:
    return wait_for(lambda: worker_of(flow_run_id), RUN_SECONDS, f"the worker of {what}")


@pytest.mark.slow
def test_campaigns_run_on_two_workers_and_survive_losing_one(
    pool_server: PrefectServer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from agent.store.migrate import upgrade
    from lab_adapters.simlab.inprocess import running_simlab

    matloop_db = postgres_server.create_database("matloop")
    upgrade(matloop_db)  # once, before the workers (docker-compose's `migrate`): runs never race to create it

    # `matloop deploy`: creates the pool and the deployment; again: finds the pool, updates the same deployment
    assert "does not exist, and the process pool" in _deploy("--image", "matloop:1", exit_code=1)
    first = _deploy()
    assert f"work pool {POOL} (process) created; deployment {DEPLOYMENT} created" in first, first
    assert "is a process pool, whose jobs take no image" in _deploy("--image", "matloop:1", exit_code=1)
    _deploy("--env", "MATLOOP_NOTE=on")
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name(DEPLOYMENT).job_variables == {"env": {"MATLOOP_NOTE": "on"}}
    again = _deploy()
    assert f"work pool {POOL} (process) already there; deployment {DEPLOYMENT} updated" in again, again
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        assert deployment.work_pool_name == POOL and deployment.entrypoint == "flows.campaign.campaign_flow"
        assert deployment.job_variables == {}  # what this deploy asked for, not what an earlier one did
        assert client.read_work_pool(POOL).type == "process"
    from flows.deployments import campaign_deployment

    # the run form is the served deployment's: the same typed parameters
    assert deployment.parameter_openapi_schema == campaign_deployment()._parameter_openapi_schema.model_dump(
        exclude_unset=True)
    assert deployment.id.hex in again.replace("-", "")

    # A slow lab for the campaign that will lose its worker (its batch stays out ~20 s, 4 slots in parallel), a
    # fast one for the other; their tokens are in this process's environment, so the workers inherit them.
    with running_simlab(scenarios=["branin"], time_scale=0.05, instruments={"evaluator": 4}) as slow, \
            running_simlab(scenarios=["branin"], time_scale=1e-4) as fast:
        slow_spec = branin_spec(slow.url, slow.token, name="pool-a", budget={"max_experiments": 4}, space=SPACE)
        fast_spec = branin_spec(fast.url, fast.token, name="pool-b", budget={"max_experiments": 4}, space=SPACE)
        env = matloop_env(database_url=matloop_db, data_dir=tmp_path / "data", prefect_api=pool_server.url)
        workers = Workers(POOL)
        try:
            for name in ("worker-1", "worker-2"):
                workers.processes[name] = start_worker(
                    POOL, name, {**env, "PREFECT_HOME": str(tmp_path / name)}, tmp_path / f"{name}.log", limit=1)
            wait_for(lambda: online_workers(POOL) == {"worker-1", "worker-2"}, RUN_SECONDS, "both workers online")
            _exercise(workers, slow_spec, fast_spec, slow, matloop_db)
        finally:
            workers.stop()
    for process in workers.processes.values():
        assert not process.alive()


def _exercise(workers: Workers, slow_spec: Any, fast_spec: Any, slow_lab: Any, matloop_db: str) -> None:
    # The same campaign twice at once, then another campaign: each worker takes one run at a time.
    twins = [_start(slow_spec), _start(slow_spec)]
    other = _start(fast_spec)
    db = Database(matloop_db)
    try:
        refused_run = wait_for(lambda: next((r for r in twins if (s := _state(r)) and s.is_final()), None),
                               RUN_SECONDS, "one of the twin runs to be refused")
        running_run = next(r for r in twins if r != refused_run)
        refused = _state(refused_run)
        assert refused.is_failed(), refused
        assert f"campaign 'pool-a' is being run by flow run {running_run} on host " in (refused.message or ""), (
            refused.message)
        holder, refuser = _worker(running_run, "the running twin"), _worker(refused_run, "the refused twin")
        assert holder != refuser  # the guard held across workers (and each took one run)

        # the running campaign's batch is out at the lab: mid-iteration
        wait_for(lambda: _submitted(db, "pool-a") == 4, RUN_SECONDS, "pool-a's batch to reach the lab")

        workers.processes[holder].kill()  # the worker and its flow run die at once; Prefect still says Running
        with db.reading() as session:
            record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == "pool-a"))
            assert record is not None
            iteration = session.scalar(select(IterationRecord).where(IterationRecord.campaign_id == record.id))
            assert iteration is not None and iteration.step != "complete", "killed after its iteration ended"
            assert session.scalar(select(func.count(MeasurementRecord.id))) == 0, "killed after results came in"

        done_other = _final(other, "pool-b to finish")
        assert done_other.is_completed(), done_other
        assert _worker(other, "pool-b") == refuser != holder  # two campaigns, two workers

        resumed = _start(slow_spec)  # what a person does after losing a machine: run the campaign again
        done = _final(resumed, "pool-a to finish on the surviving worker")
        assert done.is_completed(), done
        assert _worker(resumed, "the resumed run") == refuser
        _nothing_lost_nothing_twice(db, slow_lab)
        # the refused twin ended with its one sentence in the worker's output, not Prefect's traceback of it
        log = workers.processes[refuser].log.read_text(errors="replace")
        assert "refused: campaign 'pool-a' is being run by flow run" in log, log[-4000:]
        assert "exited with unexpected exception" not in log and "Traceback" not in log, log[-6000:]
    finally:
        db.dispose()


def _submitted(db: Database, campaign: str) -> int:
    with db.reading() as session:
        return session.scalar(
            select(func.count(JobRecord.id)).join(CampaignRecord, CampaignRecord.id == JobRecord.campaign_id)
            .where(CampaignRecord.name == campaign, JobRecord.external_id.is_not(None))) or 0


def _nothing_lost_nothing_twice(db: Database, lab: Any) -> None:
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == "pool-a"))
        assert record is not None and record.status == "stopped", record and record.status
        jobs = list(session.scalars(select(JobRecord).where(JobRecord.campaign_id == record.id)))
        measured = list(session.scalars(select(MeasurementRecord).where(MeasurementRecord.campaign_id == record.id)))
    assert len(jobs) == 4 and {j.status for j in jobs} == {"succeeded"}, [(j.id, j.status) for j in jobs]
    experiments = lab.lab.list(limit=1000)
    assert sorted(e.idempotency_key for e in experiments) == sorted(j.idempotency_key for j in jobs)
    assert {e.executions for e in experiments} == {1}, "an experiment ran twice"
    assert sorted(m.job_id for m in measured) == sorted(j.id for j in jobs)


def test_deploy_refuses_in_one_sentence_without_a_reachable_api(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cli import app

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 1 and "no Prefect API answers at http://127.0.0.1:9/api" in result.output
    assert "Traceback" not in result.output
    for args, said in ((["--pool", "a/b"], "work pool name 'a/b' is not a valid Prefect name"),
                       (["--pool", "prefect-x"], "Prefect reserves names starting with 'prefect'"),
                       (["--name", " "], "deployment name ' ' is not a valid Prefect name"),
                       (["--env", "PGPASSWORD=x"], "--env PGPASSWORD: secrets are not stored in the deployment"),
                       (["--env", "MATLOOP_DATABASE_URL=postgresql://u:pw@db/m"], "secrets are not stored"),
                       (["--env", "no-equals"], "is not KEY=VALUE")):
        result = CliRunner().invoke(app, ["deploy", *args])
        assert result.exit_code == 1 and said in result.output, (args, result.output)
