"""The budget ledger in the loop: charged at dispatch, refunded or kept on failure, a lost job paid once.

Real parts throughout: the in-process simulated lab over loopback HTTP (failing every experiment, or replaced
by an empty one to lose jobs) and both databases.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from agent.adapters import open_adapters
from agent.loop import Backoff, LoopContext, fit, generate, open_iteration, select_batch_step
from agent.loop.dispatch import create_jobs, dispatch, submit_pending
from agent.loop.gate import apply_decision, policy_decision
from agent.loop.state import progress
from agent.loop.sync import LOST_RESUBMISSIONS, sync
from agent.loop.wait import wait_for_results
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.ledger import charge, ledger_totals, spent
from agent.store.models import JobRecord, LedgerEntryRecord
from lab_adapters.simlab.client import SimLabAdapter
from lab_adapters.simlab.inprocess import running_simlab
from tests.loop.conftest import branin_spec

COST = 2.5


def _spec(simlab: Any, name: str, **overrides: Any) -> Any:
    measures = [{"properties": ["y"], "adapter": "lab", "fidelity": "branin", "cost": COST,
                 "options": {"scenario": "branin"}}]
    return branin_spec(simlab.url, simlab.token, name=name, measurements=measures, **overrides)


def _dispatched_batch(db: Database, spec: Any, adapters: dict[str, Any]) -> tuple[LoopContext, int, int]:
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
    return ctx, iteration.id, batch_id


def _entries(db: Database) -> list[LedgerEntryRecord]:
    with db.reading() as session:
        return list(session.scalars(select(LedgerEntryRecord).order_by(LedgerEntryRecord.id)))


def test_each_job_is_charged_once_when_dispatched(migrated_db_url: str, simlab: Any) -> None:
    spec = _spec(simlab, "ledger-dispatch")
    db = Database(migrated_db_url)
    with open_adapters(spec) as adapters:
        ctx, iteration_id, batch_id = _dispatched_batch(db, spec, adapters)
        assert create_jobs(ctx, batch_id) == 0  # dispatch repeated (as on resume): no new job, so no new charge
    entries = _entries(db)
    with db.reading() as session:
        jobs = list(session.scalars(select(JobRecord).order_by(JobRecord.id)))
        snapshot = progress(session, spec, ctx.campaign_id)
        totals = ledger_totals(session, ctx.campaign_id)
    assert len(jobs) == 4 and [e.job_id for e in entries] == [j.id for j in jobs]
    assert {(e.kind, e.amount, e.fidelity, e.adapter, e.iteration_id) for e in entries} == {
        ("charge", COST, "branin", "lab", iteration_id)}
    assert [e.batch_item_id for e in entries] == [j.batch_item_id for j in jobs]
    assert snapshot.cost == totals.net == 4 * COST and totals.jobs == 4 and totals.refunded == 0
    assert [(r.key, r.net) for r in totals.by_fidelity_adapter] == [("branin / lab", 4 * COST)]
    with pytest.raises(IntegrityError), db.transaction() as session:  # the database itself refuses a 2nd charge
        charge(session, session.get(JobRecord, jobs[0].id), iteration_id=iteration_id, reason="again")
    assert len(_entries(db)) == 4
    db.dispose()


@pytest.mark.parametrize("policy", ["keep", "refund"])
def test_a_failed_job_keeps_or_refunds_its_charge_as_the_policy_says(migrated_db_url: str, policy: str) -> None:
    with running_simlab(scenarios=["branin"], time_scale=1e-4, failure_rate=1.0) as lab:
        spec = _spec(lab, f"ledger-fail-{policy}", budget={"max_cost": 100.0, "on_failure": policy})
        db = Database(migrated_db_url)
        with open_adapters(spec) as adapters:
            ctx, iteration_id, _ = _dispatched_batch(db, spec, adapters)
            outcome = wait_for_results(ctx, iteration_id, 1.0, sleep=lambda _: None)
            assert outcome.done == outcome.total == 4
    with db.reading() as session:
        assert set(session.scalars(select(JobRecord.status))) == {"failed"}
        snapshot = progress(session, spec, ctx.campaign_id)
    entries = _entries(db)
    refunds = [e for e in entries if e.kind == "refund"]
    if policy == "keep":
        assert not refunds and snapshot.cost == 4 * COST
    else:
        assert len(refunds) == 4 and all(e.amount == -COST and "on_failure is refund" in e.reason for e in refunds)
        assert snapshot.cost == 0.0
    sync(ctx)  # a repeated sync (as after a crash) refunds nothing twice
    assert len(_entries(db)) == len(entries)
    db.dispose()


def test_a_lost_job_run_again_is_paid_once(migrated_db_url: str, simlab: Any) -> None:
    """Before the ledger, progress summed the cost of the lost job and of its re-run: twice for one experiment."""
    spec = _spec(simlab, "ledger-lost")
    db = Database(migrated_db_url)
    with open_adapters(spec) as adapters:
        ctx, iteration_id, _ = _dispatched_batch(db, spec, adapters)
        with running_simlab(scenarios=["branin"], time_scale=1e-4) as fresh:  # the lab came back empty
            ctx.adapters = {"lab": SimLabAdapter(fresh.url, fresh.token, name="lab")}
            outcome = wait_for_results(ctx, iteration_id, 1.0, sleep=lambda _: None)
            assert outcome.done == outcome.total == 8
    with db.reading() as session:
        jobs = {j.id: j for j in session.scalars(select(JobRecord))}
        snapshot = progress(session, spec, ctx.campaign_id)
        totals = ledger_totals(session, ctx.campaign_id)
    entries = _entries(db)
    charged = {e.job_id for e in entries if e.kind == "charge"}
    refunded = {e.job_id for e in entries if e.kind == "refund"}
    assert charged == set(jobs) and refunded == {i for i, j in jobs.items() if j.status == "lost"}
    assert all(e.iteration_id == iteration_id for e in entries)  # the re-run is spent on the batch that chose it
    assert snapshot.cost == spent_of(db, ctx.campaign_id) == 4 * COST and snapshot.experiments == 4
    assert (totals.charged, totals.refunded, totals.jobs) == (8 * COST, 4 * COST, 8)
    db.dispose()


@pytest.mark.parametrize("policy", ["keep", "refund"])
def test_a_job_lost_every_time_is_a_failure_under_the_policy(sqlite_url: str, simlab: Any, policy: str) -> None:
    from agent.store.migrate import upgrade

    spec = _spec(simlab, "ledger-lost-always", batch_size=1, initial_design_size=1,
                 budget={"max_cost": 10.0, "on_failure": policy})
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with open_adapters(spec) as adapters:
        ctx, _, _ = _dispatched_batch(db, spec, adapters)
        for _ in range(LOST_RESUBMISSIONS + 1):  # the lab forgets everything before every poll
            with running_simlab(scenarios=["branin"], time_scale=1.0) as fresh:
                ctx.adapters = {"lab": SimLabAdapter(fresh.url, fresh.token, name="lab")}
                sync(ctx)
                submit_pending(ctx)
    entries = _entries(db)
    assert [e.kind for e in entries].count("charge") == LOST_RESUBMISSIONS + 1
    assert [e.kind for e in entries].count("refund") == LOST_RESUBMISSIONS + (policy == "refund")
    assert spent_of(db, ctx.campaign_id) == (COST if policy == "keep" else 0.0)
    db.dispose()


def test_auto_below_cost_leaves_a_batch_the_budget_cannot_pay_for_to_a_person(sqlite_url: str, simlab: Any) -> None:
    """After the first batch 10 of 20 are left: a second batch of four (10) goes by itself, until 2.5 more is spent."""
    from agent.store.migrate import upgrade

    spec = _spec(simlab, "ledger-gate", budget={"max_cost": 20.0},
                 approval={"policy": "auto_below_cost", "cost_limit": 50.0})
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with open_adapters(spec) as adapters:
        ctx, iteration_id, _ = _dispatched_batch(db, spec, adapters)
        wait_for_results(ctx, iteration_id, 1.0, sleep=lambda _: None)
        iteration = open_iteration(ctx)
        fitted = fit(ctx, iteration.id)
        batch_id = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
        decision = policy_decision(ctx, batch_id)
        assert decision is not None and "10 cost units left" in (decision.note or "")
        with db.transaction() as session:  # 2.5 more spent meanwhile (say, a job another step stored)
            first = session.scalars(select(JobRecord).order_by(JobRecord.id)).first()
            assert first is not None
            extra = JobRecord(campaign_id=ctx.campaign_id, candidate_id=first.candidate_id, adapter="lab",
                              fidelity="branin", idempotency_key="extra", status="succeeded", cost=COST)
            session.add(extra)
            charge(session, extra, iteration_id=iteration.id, reason="test")
        assert policy_decision(ctx, batch_id) is None  # 10 > 7.5 left: a person decides
    db.dispose()


def spent_of(db: Database, campaign_id: int) -> float:
    with db.reading() as session:
        return spent(session, campaign_id)
