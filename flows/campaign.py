"""The campaign flow: the loop of DESIGN.md as a Prefect flow, each step a named task with retries.

The flow is a thin shell over :func:`agent.loop.run_campaign`: it opens the
database and the adapters, claims the campaign's run lock, and injects (1) a
step runner that runs every step as a Prefect task (retried on transient
errors, visible per iteration in the UI), (2) the approval pause, and (3) the
artifact publisher.  All state is in the database, so re-running the flow
(``matloop run --resume``, or re-running the deployment) resumes the campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import httpx
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from agent.adapters import open_adapters
from agent.loop import Hooks, LoopContext, run_campaign
from agent.loop.context import Backoff
from agent.loop.state import latest_iteration, latest_recommendation, progress
from agent.spec import Approval, Campaign
from agent.store import Database, DatabaseBusy, DatabaseUnreachable
from agent.store.campaigns import (
    acquire_run_lock,
    refuse_existing_campaign,
    register_campaign,
    release_run_lock,
)
from agent.store.events import record_event
from agent.store.lease import LeaseHeartbeat
from agent.store.models import CampaignRecord
from flows.approval import ask_person_in_prefect
from flows.artifacts import ArtifactPublisher
from flows.inputs import CampaignSource
from flows.logs import step_finished
from matloop.settings import get_settings
from matloop.types import AdapterError

log = logging.getLogger(__name__)

#: Retries of a step that failed for a transient reason (lab unreachable, database busy or restarting).
#: About nine minutes in all: a campaign runs for days, and a database failover, a restart for maintenance
#: or a lab's network blip should pause it, not end it (42 s, the first policy, was shorter than a restart).
#: Should a second run take the campaign's lease meanwhile, this one stops at its next step (agent/store/lease.py).
STEP_RETRY_DELAYS = [2, 10, 30, 60, 120, 300]
STEP_RETRIES = len(STEP_RETRY_DELAYS)
LOCK_TTL = timedelta(minutes=10)


def is_transient(exc: BaseException | None) -> bool:
    """Errors worth retrying: the lab or the database briefly unreachable or busy."""
    if exc is None:
        return False
    if isinstance(exc, AdapterError):
        return exc.transient
    return isinstance(exc, (DatabaseUnreachable, DatabaseBusy, httpx.TransportError, ConnectionError, TimeoutError))


def _retry_condition(task_: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we classify, not handle
        return is_transient(exc)
    return False


def prefect_step_runner(ctx: LoopContext, renew_lock: Callable[[], None]) -> Callable[..., Any]:
    """Run each loop step as a Prefect task named after the step and its iteration."""

    def run_step(name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        renew_lock()
        with ctx.db.reading() as session:
            last = latest_iteration(session, ctx.campaign_id)
        number = 0 if last is None else last.number + (1 if last.step == "complete" and name != "drain" else 0)

        def call() -> Any:
            return function(*args, **kwargs)

        # The step's inputs (pools, fitted models) stay out of Prefect's parameter walk: the closure takes none.
        call.__name__ = call.__qualname__ = name
        step_task = task(
            call, name=name, task_run_name=f"{name} · iteration {number}", retries=STEP_RETRIES,
            retry_delay_seconds=STEP_RETRY_DELAYS, retry_condition_fn=_retry_condition, cache_policy=NO_CACHE,
            persist_result=False,
        )
        result = step_task()
        step_finished(ctx, name, number, args, result)  # flows/logs.py: its outcome in the run's log, in words
        return result

    return run_step


def open_database(url: str | None) -> Database:
    """The campaign database, migrated on first use (a brand-new database), refused when outdated."""
    from agent.store.migrate import upgrade

    db = Database(url)
    if db.current_revision() is None:
        upgrade(db.url)
    db.require_current()
    return db


def _register(db: Database, spec: Campaign, resume: bool) -> int:
    with db.transaction() as session:
        if not resume:
            refuse_existing_campaign(session, spec.name, db.display_url, "run it with resume=True to continue it")
        record = register_campaign(session, spec)
        acquire_run_lock(session, record, ttl=LOCK_TTL)
        return record.id


def _renewer(db: Database, campaign_id: int) -> Callable[[], None]:
    def renew() -> None:
        with db.transaction() as session:
            record = session.get(CampaignRecord, campaign_id)
            assert record is not None
            acquire_run_lock(session, record, ttl=LOCK_TTL)

    return renew


def summary(ctx: LoopContext) -> dict[str, Any]:
    """What a finished (or paused) run reports: status, reason, experiments, best value and candidate."""
    from agent.loop.state import best_value, observations

    with ctx.db.reading() as session:
        record = session.get(CampaignRecord, ctx.campaign_id)
        assert record is not None
        snap = progress(session, ctx.campaign, ctx.campaign_id)
        best, who = best_value(ctx.campaign, observations(session, ctx.campaign, ctx.campaign_id))
        recommended = latest_recommendation(session, ctx.campaign_id)
    return {
        "campaign": ctx.campaign.name,
        "status": record.status,
        "stop_reason": record.stop_reason,
        "iterations": snap.completed_iterations,
        "experiments": snap.experiments,
        "results": snap.results,
        "failed": snap.failed,
        "cost": snap.cost,
        "objective": ctx.campaign.objectives[0].property,
        "best": best,
        "best_candidate": None if who is None else who.content,
        "best_label": None if who is None else who.label(max_len=120),
        "best_kind": None if who is None else who.kind.value,
        "recommended": recommended,
    }


def _run_name() -> str:
    from prefect.runtime import flow_run

    source = flow_run.parameters.get("campaign") or {}
    if isinstance(source, CampaignSource):
        source = source.model_dump()
    spec = source.get("spec") or {}
    name = spec.get("name") if isinstance(spec, dict) else getattr(spec, "name", None)
    return f"campaign-{name or source.get('path') or 'unknown'}"


@flow(name="matloop-campaign", flow_run_name=_run_name, log_prints=True, validate_parameters=True)
def campaign_flow(
    campaign: CampaignSource,
    approval: Literal["auto", "manual", "auto_below_cost"] | None = None,
    max_iterations: int | None = None,
    resume: bool = True,
    database_url: str | None = None,
    poll_initial_seconds: float = 0.5,
    poll_max_seconds: float = 60.0,
) -> dict[str, Any]:
    """Run (or resume) a campaign until it stops or ``max_iterations`` more iterations are done.

    ``approval`` overrides the campaign's approval policy for this run (the
    override is logged as an event; the stored spec is unchanged).
    """
    spec = campaign.load()
    db = open_database(database_url or get_settings().resolved_database_url)
    campaign_id = _register(db, spec, resume)
    run_spec = spec
    if approval is not None and approval != spec.approval.policy:
        limit = spec.approval.cost_limit if approval == "auto_below_cost" else None
        run_spec = spec.model_copy(update={"approval": Approval(policy=approval, cost_limit=limit)})
        with db.transaction() as session:
            record_event(session, "approval_override", campaign_id=campaign_id,
                         payload={"policy": approval, "spec_policy": spec.approval.policy})
    publisher = ArtifactPublisher()
    renew = _renewer(db, campaign_id)
    try:
        with LeaseHeartbeat(db, campaign_id, LOCK_TTL), open_adapters(run_spec) as adapters:
            ctx = LoopContext(
                db=db, campaign=run_spec, campaign_id=campaign_id, adapters=adapters,
                artifacts_dir=get_settings().data_dir / "campaigns" / spec.name, base_dir=campaign.base_dir,
                backoff=Backoff(initial=poll_initial_seconds, maximum=poll_max_seconds),
            )
            outcome = run_campaign(
                ctx, run_step=prefect_step_runner(ctx, renew), ask_person=ask_person_in_prefect,
                max_iterations=max_iterations,
                hooks=Hooks(on_batch=publisher.batch, on_iteration=publisher.progress),
            )
            if outcome.status == "paused":
                with db.transaction() as session:
                    record = session.get(CampaignRecord, campaign_id)
                    assert record is not None
                    record.status = "paused"
                    record_event(session, "run_paused", campaign_id=campaign_id, payload={"reason": outcome.reason})
            result = summary(ctx)
            publisher.finish(ctx, result, outcome.reason)
            print(f"campaign {spec.name}: {result['status']} — {result['stop_reason'] or outcome.reason}")
            return result
    except BaseException as exc:
        _record_failure(db, campaign_id, exc)
        raise
    finally:
        with db.transaction() as session:
            record = session.get(CampaignRecord, campaign_id)
            if record is not None:
                release_run_lock(session, record)
        db.dispose()


def _record_failure(db: Database, campaign_id: int, exc: BaseException) -> None:
    """Note an aborted run in the audit log (the campaign stays resumable; nothing is rolled back)."""
    from prefect.exceptions import Pause, TerminationSignal

    if isinstance(exc, Pause):
        return  # suspended for approval: not a failure
    # Ctrl-C or a termination signal is the user's (or the system's) choice, not a fault of the campaign:
    # it is paused, like a run that reached --max-iterations, and resumes from its last committed step.
    interrupted = isinstance(exc, KeyboardInterrupt | TerminationSignal)
    try:
        with db.transaction() as session:
            record = session.get(CampaignRecord, campaign_id)
            if record is not None and record.status != "stopped":
                record.status = "paused" if interrupted else "failed"
            record_event(session, "run_interrupted" if interrupted else "run_failed", campaign_id=campaign_id,
                         payload={"error": f"{type(exc).__name__}: {exc}"[:2000]})
    except Exception:  # noqa: BLE001 - the original error matters more
        log.exception("could not record the failed run")
