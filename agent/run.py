"""One run of one campaign: the seam the Prefect flow and the CLI share, so they can never disagree.

:class:`CampaignRun` is a context manager that

1. opens the campaign database (migrating a brand-new one, refusing an outdated one);
2. registers the campaign or refuses the run in one sentence: the name exists and ``resume`` was not asked
   for, the campaign is finished, another live run holds its lease (:class:`~agent.store.errors.LeaseHeld`),
   or this run is a stale one resumed after another run took the campaign.  Two runs registering at the
   same instant get the same sentences: a unique-name collision (PostgreSQL) or a lock (SQLite) is retried,
   and the retry reads what the winner wrote;
3. holds the lease (:class:`~agent.store.lease.LeaseHeartbeat`), keeping it past the process for a flow run
   that suspends for approval, so no second run slips in while a person decides;
4. records how the run ended (paused, failed, interrupted) and gives the lease back;
5. sums the campaign up in a typed :class:`RunSummary`.

It knows nothing of Prefect: the flow passes the flow run id (part of the lease owner, so ``matloop approve``
and a resumed run can tell *which* run owns the campaign) and a ``run_is_over`` check of Prefect's run states.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from agent.loop.outage import read_through_outage, through_outage
from agent.spec import Campaign
from agent.store import Database, DatabaseBusy
from agent.store.campaigns import (
    CampaignAlreadyExists,
    LeaseOwner,
    RunIsOver,
    acquire_run_lock,
    lease_holder,
    lease_refusal,
    process_identity,
    register_campaign,
    release_run_lock,
    suspend_run_lock,
)
from agent.store.errors import CampaignFinished, LeaseHeld, StoreError
from agent.store.events import record_event
from agent.store.lease import LeaseHeartbeat
from agent.store.models import CampaignRecord, EventRecord

log = logging.getLogger(__name__)

#: How long the end of a run waits for a database that is restarting (~42 s): less than the steps' schedule, since
#: nothing is lost if it gives up.
END_OF_RUN_RETRY_DELAYS = (2, 10, 30)

#: The run lease's time to live; the heartbeat renews it every third of that.
LOCK_TTL = timedelta(minutes=10)
#: How long a flow run suspended for approval keeps the campaign (Prefect's pause times out after 7 days).
SUSPENDED_TTL = timedelta(days=7, hours=1)
#: Waits between tries when registering meets a lock or a same-instant registration (seconds).
REGISTER_RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0, 4.0)


class RunSummary(BaseModel):
    """What a finished (or paused) run reports: status, reason, experiments, best value and candidate."""

    campaign: str
    status: str
    stop_reason: str | None = None
    iterations: int = 0
    experiments: int = 0
    results: int = 0
    failed: int = 0
    cost: float = 0.0
    objective: str
    best: float | None = None
    best_candidate: Any = None
    best_label: str | None = None
    best_kind: str | None = None
    recommended: dict[str, Any] | None = None


def open_database(url: str | None) -> Database:
    """The campaign database, migrated on first use (a brand-new database), refused when outdated."""
    from agent.store.migrate import upgrade

    db = Database(url)
    try:
        if db.current_revision() is None:
            upgrade(db.url)
        db.require_current()
    except BaseException:
        db.dispose()
        raise
    return db


def only_budget_differs(stored: dict[str, Any], new: Campaign) -> bool:
    """True when ``new`` is the stored spec with another budget: how a finished campaign is extended."""
    other = new.model_dump(mode="json")
    try:  # compared in this version's shape: settings added since it was stored read as their defaults
        stored = Campaign.from_stored(stored).model_dump(mode="json")
    except ValidationError:
        pass
    return {k: v for k, v in stored.items() if k != "budget"} == {k: v for k, v in other.items() if k != "budget"}


class CampaignRun:
    """A context manager around one run of ``spec``; see the module docstring for what it does, in order."""

    def __init__(
        self,
        spec: Campaign,
        *,
        database_url: str | None = None,
        resume: bool,
        resume_hint: str = "run it with resume=True to continue it",
        flow_run_id: str | None = None,
        run_is_over: RunIsOver | None = None,
        ttl: timedelta = LOCK_TTL,
        heartbeat_interval: float | None = None,
    ) -> None:
        self.spec = spec
        self.database_url = database_url
        self.resume = resume
        self.resume_hint = resume_hint
        self.owner = process_identity(flow_run_id)
        self.run_is_over = run_is_over
        self.ttl = ttl
        self.heartbeat_interval = heartbeat_interval
        self.db: Database | None = None
        self.campaign_id: int = -1
        self._heartbeat: LeaseHeartbeat | None = None

    # -- registering -----------------------------------------------------------------------------------------

    def __enter__(self) -> CampaignRun:
        self.db = open_database(self.database_url)
        try:
            self.campaign_id = self._register_with_retries(self.db)
            self._heartbeat = LeaseHeartbeat(self.db, self.campaign_id, self.ttl, interval=self.heartbeat_interval,
                                             owner=self.owner, run_is_over=self.run_is_over)
            self._heartbeat.__enter__()
        except BaseException:
            self.db.dispose()
            raise
        return self

    def _register_with_retries(self, db: Database) -> int:
        """Register, retrying a lock or a same-instant insert: the retry then sees the winner and refuses plainly."""
        for delay in (*REGISTER_RETRY_DELAYS, None):
            try:
                with db.transaction() as session:
                    return self._register(session)
            except (IntegrityError, DatabaseBusy) as exc:
                if delay is None:
                    if isinstance(exc, DatabaseBusy):
                        raise
                    raise DatabaseBusy(f"campaign {self.spec.name!r} is being registered by another run right "
                                       "now; try again in a moment") from None
                log.info("registering %s met a concurrent writer, retrying: %s", self.spec.name, exc)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _register(self, session: Any) -> int:
        record = session.scalar(
            select(CampaignRecord).where(CampaignRecord.name == self.spec.name).with_for_update()
        )
        if record is not None and record.spec_hash != self.spec.spec_hash() and self.spec.same_as_stored(record.spec):
            # the same campaign, stored before this version added a defaulted setting (e.g. budget.currency)
            record.spec, record.spec_hash = self.spec.model_dump(mode="json"), self.spec.spec_hash()
        # On resume, a spec that differs only in its budget is how a campaign is extended (logged by
        # register_campaign as spec_changed); any other change is refused there, in its own words.
        changed_budget = record is not None and record.spec_hash != self.spec.spec_hash() and only_budget_differs(
            record.spec, self.spec)
        if record is not None:
            self._refuse(session, record)
            if record.status == "stopped" and changed_budget:
                record_event(session, "campaign_extended", campaign_id=record.id,
                             payload={"old_budget": record.spec.get("budget"),
                                      "new_budget": self.spec.budget.model_dump(mode="json")})
                record.status = "paused"
        record = register_campaign(session, self.spec, allow_changed_spec=changed_budget)
        self.owner = acquire_run_lock(session, record, ttl=self.ttl, owner=self.owner, run_is_over=self.run_is_over)
        record_event(session, "run_started", campaign_id=record.id,
                     payload={"owner": self.owner.encode(), "flow_run_id": self.owner.flow_run_id})
        return record.id

    def _refuse(self, session: Any, record: CampaignRecord) -> None:
        """Raise the one sentence that refuses this run of an existing campaign, if any applies."""
        holder = lease_holder(record, run_is_over=self.run_is_over)
        if holder is not None and holder.same_run(self.owner):
            return  # this very flow run, resumed after it suspended for approval: it continues
        waited = self._my_wait(session, record)
        if waited is not None:
            latest, batch_id = waited
            if holder is not None or latest != self.owner.flow_run_id:
                now = f"is run by {holder.describe()}" if holder is not None else (
                    f"moved on (flow run {latest} waits for it now)" if latest else "moved on")
                raise LeaseHeld(
                    f"this flow run {self.owner.flow_run_id} no longer owns campaign {record.name!r}: it waited for "
                    f"approval of batch {batch_id}, but the campaign {now}; its decision is not applied here"
                )
            return  # resumed after suspending and nobody took the campaign meanwhile: carry on
        if holder is not None:
            raise LeaseHeld(lease_refusal(record, holder))
        same_spec = record.spec_hash == self.spec.spec_hash()
        if record.status == "stopped" and same_spec:
            raise CampaignFinished(
                f"campaign {record.name!r} is finished ({record.stop_reason or 'stopped'}); to go on, raise its "
                f"`budget:` (in the campaign file or the inline spec) and {self.resume_hint}"
            )
        if not self.resume:
            raise CampaignAlreadyExists(
                f"campaign {record.name!r} already exists in {self.db.display_url if self.db else 'the database'} "
                f"(status {record.status}): {self.resume_hint}, or change `name:` in the campaign file"
            )

    def _my_wait(self, session: Any, record: CampaignRecord) -> tuple[str | None, int] | None:
        """When this flow run once waited for approval on ``record``: (the latest waiting run's id, our batch)."""
        if not self.owner.flow_run_id:
            return None
        events = list(session.scalars(
            select(EventRecord).where(EventRecord.campaign_id == record.id, EventRecord.kind == "approval_requested")
            .order_by(EventRecord.id.desc())
        ))
        mine = next((e for e in events if (e.payload or {}).get("flow_run_id") == self.owner.flow_run_id), None)
        if mine is None:
            return None
        return (events[0].payload or {}).get("flow_run_id"), int((mine.payload or {}).get("batch", 0))

    # -- while running ---------------------------------------------------------------------------------------

    @property
    def database(self) -> Database:
        assert self.db is not None, "use CampaignRun as a context manager"
        return self.db

    def renew(self) -> None:
        """Renew the lease before a step; a lock blip is retried, a lost lease stops the run in one sentence."""
        assert self._heartbeat is not None
        if self._heartbeat.lost is not None:
            raise self._lost(self._heartbeat.lost)
        for delay in (*REGISTER_RETRY_DELAYS, None):
            try:
                self._heartbeat.renew()
                return
            except LeaseHeld as exc:
                raise self._lost(str(exc)) from None
            except DatabaseBusy:
                if delay is None:
                    raise
                time.sleep(delay)

    def _lost(self, why: str) -> LeaseHeld:
        return LeaseHeld(f"this run lost campaign {self.spec.name!r} and stops here (what it committed is kept): "
                         f"{why}")

    def record_approval_override(self, policy: str, spec_policy: str) -> None:
        """The audit event for a run whose approval policy overrides the campaign file's.

        Written before the loop's first step, outside the flow's step retries, so a database restarting just then
        is waited for as between two steps; a retried write at worst logs ``approval_override`` twice.
        """

        def write() -> None:
            with self.database.transaction() as session:
                record_event(session, "approval_override", campaign_id=self.campaign_id,
                             payload={"policy": policy, "spec_policy": spec_policy})

        through_outage(write)

    def record_paused(self, reason: str | None) -> None:
        """The run ended early on purpose (``max_iterations``): the campaign is paused, resumable.

        Written after the loop's last step, outside the flow's step retries, so a database restarting just then
        is waited for here as between two steps; a retried write at worst logs ``run_paused`` twice.
        """

        def write() -> None:
            with self.database.transaction() as session:
                record = session.get(CampaignRecord, self.campaign_id)
                assert record is not None
                record.status = "paused"
                record_event(session, "run_paused", campaign_id=self.campaign_id, payload={"reason": reason})

        through_outage(write)

    def summary(self, campaign: Campaign | None = None) -> RunSummary:
        """The campaign as it stands: status, reason, experiments, best value and candidate, the model's pick.

        Read after the loop's last step, outside the flow's step retries: a database restarting just then is
        waited for as between two steps, so a campaign that stopped cleanly never ends its run Failed on it.
        """
        from agent.loop.state import best_value, latest_recommendation, observations, progress

        spec = campaign or self.spec

        def read(session: Any) -> RunSummary:
            record = session.get(CampaignRecord, self.campaign_id)
            assert record is not None
            snap = progress(session, spec, self.campaign_id)
            best, who = best_value(spec, observations(session, spec, self.campaign_id))
            return RunSummary(
                campaign=spec.name, status=record.status, stop_reason=record.stop_reason,
                iterations=snap.completed_iterations, experiments=snap.experiments, results=snap.results,
                failed=snap.failed, cost=snap.cost, objective=spec.objectives[0].property, best=best,
                best_candidate=None if who is None else who.content,
                best_label=None if who is None else who.label(max_len=120),
                best_kind=None if who is None else who.kind.value,
                recommended=latest_recommendation(session, self.campaign_id),
            )

        return read_through_outage(self.database, read)

    # -- ending ----------------------------------------------------------------------------------------------

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.db is not None and self._heartbeat is not None
        self._heartbeat.__exit__(exc_type, exc, tb)
        suspended = exc is not None and _is_suspension(exc)
        lost = isinstance(exc, LeaseHeld)

        def record_end() -> None:
            if exc is not None and not suspended and not lost:
                self._record_failure(exc)
            with self.db.transaction() as session:
                record = session.get(CampaignRecord, self.campaign_id)
                if record is not None and suspended:
                    suspend_run_lock(session, record, self.owner, SUSPENDED_TTL)
                elif record is not None:
                    release_run_lock(session, record, self.owner)

        try:
            # A database restarting as the run ends is waited for, briefly (the writes are idempotent but for the
            # failure's audit event): the lease otherwise stays until it lapses or Prefect says the run is over.
            through_outage(record_end, END_OF_RUN_RETRY_DELAYS)
        except StoreError as exc_end:  # one sentence: the run's own outcome is what matters
            log.error("could not record the end of the run of %s (its lease lapses by itself): %s",
                      self.spec.name, exc_end)
        except Exception:  # noqa: BLE001 - the run's own error matters more; the lease then expires by itself
            log.exception("could not record the end of the run of %s", self.spec.name)
        finally:
            self.db.dispose()

    def _record_failure(self, exc: BaseException) -> None:
        """Note an aborted run in the audit log (the campaign stays resumable; nothing is rolled back)."""
        # Ctrl-C or a termination signal is the user's (or the system's) choice, not a fault of the campaign:
        # it is paused, like a run that reached max_iterations, and resumes from its last committed step.
        interrupted = _is_interrupt(exc)
        with self.database.transaction() as session:
            record = session.get(CampaignRecord, self.campaign_id)
            if record is not None and record.status != "stopped":
                record.status = "paused" if interrupted else "failed"
            record_event(session, "run_interrupted" if interrupted else "run_failed", campaign_id=self.campaign_id,
                         payload={"error": f"{type(exc).__name__}: {exc}"[:2000]})


def preflight(db: Database, spec: Campaign, *, resume: bool, resume_hint: str,
              run_is_over: RunIsOver | None = None) -> None:
    """The refusals of :class:`CampaignRun`, read-only, for the CLI to say before any flow run starts."""
    run = CampaignRun(spec, resume=resume, resume_hint=resume_hint, run_is_over=run_is_over)
    run.db = db
    run.owner = LeaseOwner(host="", pid=None, flow_run_id="(not started)")  # matches no stored owner
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == spec.name))
        if record is not None:
            run._refuse(session, record)


def _is_suspension(exc: BaseException) -> bool:
    """Prefect's ``Pause`` exception: the flow run suspended for approval (its process ends; the run does not)."""
    return type(exc).__name__ == "Pause" and type(exc).__module__.startswith("prefect")


def _is_interrupt(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "TerminationSignal"
