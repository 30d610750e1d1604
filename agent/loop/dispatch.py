"""Step 6, dispatch: submit the approved candidates, each job with its idempotency key.

The order is what makes a crash harmless: (1) the jobs are written with their
keys in one transaction, (2) each is submitted, (3) their external ids are
recorded, in one transaction that also marks the batch dispatched.  Killed between
(2) and (3), a resumed run submits the same keys again and the lab answers with the
experiments it already has — nothing runs twice.
Each job's cost is charged to the ledger in (1), the transaction that stores it, so
nothing is charged twice either: a resumed run finds the job, and its charge, already there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.loop.context import LoopContext
from agent.loop.faults import checkpoint
from agent.loop.state import candidate_from_record
from agent.loop.sync import attempt_of, measurement_of
from agent.store.events import record_event
from agent.store.ledger import charge
from agent.store.models import BatchRecord, CandidateRecord, IterationRecord, JobRecord
from matloop.types import JobRequest, JobStatus, make_idempotency_key


def create_jobs(ctx: LoopContext, batch_id: int) -> int:
    """Write one pending job per (kept candidate, measurement at its fidelity) with its key; returns how many are new."""
    created = 0
    with ctx.db.transaction() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None
        if batch.status not in ("approved", "edited", "dispatched"):
            raise RuntimeError(f"batch {batch_id} is {batch.status}, not approved; refusing to dispatch it")
        for item in batch.items:
            if item.dropped:
                continue
            candidate = session.get(CandidateRecord, item.candidate_id)
            assert candidate is not None
            for m in ctx.campaign.measurements:
                if item.fidelity is not None and m.fidelity != item.fidelity:
                    continue  # the pick goes to one fidelity (agent/selection/fidelity.py)
                key = make_idempotency_key(ctx.campaign.name, candidate.fingerprint, m.fidelity, 0)
                if session.scalar(select(JobRecord.id).where(JobRecord.idempotency_key == key)) is not None:
                    continue
                job = JobRecord(
                    campaign_id=ctx.campaign_id, candidate_id=candidate.id, batch_item_id=item.id,
                    adapter=m.adapter, fidelity=m.fidelity, idempotency_key=key,
                    status=JobStatus.PENDING.value, cost=m.cost,
                )
                session.add(job)
                charge(session, job, iteration_id=batch.iteration_id, reason="dispatched")
                created += 1
        checkpoint("dispatch.before_commit")  # jobs and their charges written, not yet committed
    return created


def submit_pending(ctx: LoopContext, then: Callable[[Session, int], None] | None = None) -> int:
    """Submit every job recorded but not yet acknowledged by its adapter; returns how many.

    The external ids are recorded together, in one transaction after the submissions (with ``then(session,
    submitted)``, the caller's write that belongs with them); when a submission fails, those before it are
    recorded before the error goes on. A run killed before the ids are recorded submits the same keys again
    when it resumes, and the lab answers with the experiments it already has (see the module's docstring).
    """
    with ctx.db.reading() as session:
        rows = session.execute(
            select(JobRecord, CandidateRecord)
            .join(CandidateRecord, CandidateRecord.id == JobRecord.candidate_id)
            .where(JobRecord.campaign_id == ctx.campaign_id, JobRecord.external_id.is_(None),
                   JobRecord.status == JobStatus.PENDING.value)
            .order_by(JobRecord.id)
        ).all()
        attempts = [attempt_of(session, job) for job, _ in rows]
    submitted: list[tuple[int, str, datetime]] = []
    try:
        for (job, candidate), attempt in zip(rows, attempts, strict=True):
            m = measurement_of(ctx.campaign, job.adapter, job.fidelity)
            request = JobRequest(
                idempotency_key=job.idempotency_key, campaign=ctx.campaign.name,
                candidate=candidate_from_record(candidate), fidelity=job.fidelity,
                properties=list(m.properties), attempt=attempt, options=dict(m.options),
            )
            checkpoint("dispatch.before_submit")
            external_id = ctx.adapters[job.adapter].submit(request)
            checkpoint("dispatch.after_submit")
            submitted.append((job.id, external_id, datetime.now(UTC)))
    except BaseException:
        if submitted:
            with ctx.db.transaction() as session:
                _record_submitted(session, submitted)
        raise
    with ctx.db.transaction() as session:
        _record_submitted(session, submitted)
        if then is not None:
            then(session, len(rows))
    return len(rows)


def _record_submitted(session: Session, submitted: list[tuple[int, str, datetime]]) -> None:
    """Each submitted job's external id, status and submission time."""
    for job_id, external_id, when in submitted:
        record = session.get(JobRecord, job_id)
        assert record is not None
        record.external_id = external_id
        record.status = JobStatus.SUBMITTED.value
        record.submitted_at = when
        record.attempts = (record.attempts or 0) + 1


def dispatch(ctx: LoopContext, batch_id: int) -> int:
    """Create, submit and record the batch's jobs; the iteration moves to ``dispatched``, with the ids recorded."""
    create_jobs(ctx, batch_id)
    checkpoint("dispatch.after_create")

    def dispatched(session: Session, submitted: int) -> None:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None
        iteration = session.get(IterationRecord, batch.iteration_id)
        assert iteration is not None
        if batch.status != "dispatched":
            batch.status = "dispatched"
            iteration.step = "dispatched"
            record_event(session, "batch_dispatched", campaign_id=ctx.campaign_id, iteration_id=iteration.id,
                         payload={"batch": batch_id, "submitted": submitted})

    return submit_pending(ctx, then=dispatched)
