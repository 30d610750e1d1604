"""A job its lab no longer knows is submitted again, not stored as a failed experiment.

The in-process simulated lab keeps its state in memory, so a controller that crashes and resumes
talks to a new, empty lab: every job still out is unknown there. Before, each such job became a
failed measurement (a failure the feasibility model learnt from, a candidate never measured).
Here the lab really is replaced by a fresh one between dispatch and the results.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import Backoff, LoopContext, fit, generate, open_iteration, select_batch_step
from agent.loop.dispatch import dispatch, submit_pending
from agent.loop.gate import apply_decision, policy_decision
from agent.loop.sync import LOST_RESUBMISSIONS, sync
from agent.loop.wait import wait_for_results
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.migrate import upgrade
from agent.store.models import EventRecord, JobRecord, MeasurementRecord
from lab_adapters.simlab.client import SimLabAdapter
from lab_adapters.simlab.inprocess import running_simlab
from tests.loop.conftest import branin_spec


def _dispatched_batch(db: Database, spec: Any, adapters: dict[str, Any]) -> tuple[LoopContext, int]:
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters,
                      backoff=Backoff(initial=0.02, maximum=0.1))
    iteration = open_iteration(ctx)
    fitted = fit(ctx, iteration.id)
    batch_id = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
    decision = policy_decision(ctx, batch_id)
    assert decision is not None
    apply_decision(db, batch_id, decision)
    dispatch(ctx, batch_id)
    return ctx, iteration.id


def test_jobs_lost_with_a_restarted_lab_are_run_again_and_measured(sqlite_url: str, simlab: Any) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-lost")
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with open_adapters(spec) as adapters:
        ctx, iteration_id = _dispatched_batch(db, spec, adapters)
        with db.reading() as session:
            first_ids = {j.external_id for j in session.scalars(select(JobRecord))}
        with running_simlab(scenarios=["branin"], time_scale=1e-4) as fresh:  # the lab came back empty
            ctx.adapters = {"lab": SimLabAdapter(fresh.url, fresh.token, name="lab")}
            outcome = wait_for_results(ctx, iteration_id, 1.0, sleep=lambda _: None)
            assert outcome.done == outcome.total == 8  # four lost jobs, four new ones
            experiments = ctx.adapters["lab"].stats()
            with db.reading() as session:
                rerun_ids = [j.external_id for j in session.scalars(select(JobRecord).where(JobRecord.id > 4))]
            attempts = {ctx.adapters["lab"].experiment(i)["metadata"]["attempt"] for i in rerun_ids}
            assert attempts == {1}  # the lab is told this is the second attempt
    with db.reading() as session:
        jobs = list(session.scalars(select(JobRecord).order_by(JobRecord.id)))
        lost, rerun = jobs[:4], jobs[4:]
        assert {j.status for j in lost} == {"lost"} and {j.status for j in rerun} == {"succeeded"}
        assert all("has no experiment" in (j.error or "") for j in lost)
        assert [j.batch_item_id for j in lost] == [j.batch_item_id for j in rerun]
        assert not {j.idempotency_key for j in lost} & {j.idempotency_key for j in rerun}
        assert not first_ids & {j.external_id for j in rerun}  # the new lab's ids never repeat the old lab's
        measurements = list(session.scalars(select(MeasurementRecord)))
        assert len(measurements) == 4 and not any(m.failed for m in measurements)
        assert {m.job_id for m in measurements} == {j.id for j in rerun}
        events = list(session.scalars(select(EventRecord).where(EventRecord.kind == "job_resubmitted")))
        assert sorted(e.payload["lost_job"] for e in events) == [j.id for j in lost]
    assert experiments["experiments"] == 4  # the fresh lab ran each candidate once
    db.dispose()


def test_a_job_lost_every_time_is_stored_as_a_failure_after_the_resubmissions(sqlite_url: str, simlab: Any) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-lost-always", batch_size=1, initial_design_size=1)
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with open_adapters(spec) as adapters:
        ctx, _ = _dispatched_batch(db, spec, adapters)
        for _ in range(LOST_RESUBMISSIONS + 1):  # the lab forgets everything before every poll
            with running_simlab(scenarios=["branin"], time_scale=1.0) as fresh:
                ctx.adapters = {"lab": SimLabAdapter(fresh.url, fresh.token, name="lab")}
                sync(ctx)
                submit_pending(ctx)
    with db.reading() as session:
        jobs = list(session.scalars(select(JobRecord).order_by(JobRecord.id)))
        assert [j.status for j in jobs] == ["lost"] * (LOST_RESUBMISSIONS + 1)
        [measurement] = session.scalars(select(MeasurementRecord))
        assert measurement.failed and measurement.job_id == jobs[-1].id
        assert measurement.error.startswith(f"lost {LOST_RESUBMISSIONS + 1} times; the last time:")
    db.dispose()
