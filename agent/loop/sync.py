"""Step 1, sync: poll open jobs on every adapter and store what finished (idempotent, keyed by job).

Adapters are asked first (no transaction open during network calls); then one
transaction writes every status change and result.  A result already stored
for a (job, property) is not stored again, so a sync repeated after a crash
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.loop.context import LoopContext
from agent.loop.faults import checkpoint
from agent.spec import Campaign, Measurement
from agent.store.events import record_event
from agent.store.models import CandidateRecord, JobRecord, MeasurementRecord
from matloop.types import JobResult, JobStatus, make_idempotency_key

#: A job its executor no longer knows (a lab restarted without its state, as the in-process simulated lab is
#: after a crash; a SLURM job gone with its node) says nothing about the candidate. It is submitted again, as a
#: new job under the next attempt's idempotency key, up to this many times; only then is the loss stored as a
#: failed measurement (which the feasibility model would learn from).
LOST_RESUBMISSIONS = 2


@dataclass
class SyncReport:
    polled: int = 0
    finished: int = 0
    measurements: int = 0
    resubmitted: int = 0  # lost jobs replaced by a new attempt (submitted by ``dispatch.submit_pending``)
    statuses: dict[str, int] = field(default_factory=dict)


def measurement_of(campaign: Campaign, adapter: str, fidelity: str) -> Measurement:
    for m in campaign.measurements:
        if m.adapter == adapter and m.fidelity == fidelity:
            return m
    raise LookupError(f"no measurement in the campaign uses adapter {adapter!r} at fidelity {fidelity!r}")


def sync(ctx: LoopContext) -> SyncReport:
    """Poll every open, submitted job; fetch and store results of those that reached a terminal state."""
    with ctx.db.reading() as session:
        open_jobs = list(
            session.scalars(
                select(JobRecord).where(
                    JobRecord.campaign_id == ctx.campaign_id,
                    JobRecord.status.in_([JobStatus.SUBMITTED.value, JobStatus.RUNNING.value, JobStatus.PENDING.value]),
                    JobRecord.external_id.is_not(None),
                )
            )
        )
    report = SyncReport(polled=len(open_jobs))
    if not open_jobs:
        return report
    by_adapter: dict[str, list[JobRecord]] = {}
    for job in open_jobs:
        by_adapter.setdefault(job.adapter, []).append(job)
    statuses: dict[int, JobStatus] = {}
    results: dict[int, JobResult] = {}
    for adapter_name, jobs in by_adapter.items():
        adapter = ctx.adapters[adapter_name]
        polled = adapter.poll([j.external_id for j in jobs if j.external_id])
        for job in jobs:
            status = polled.get(job.external_id or "")
            if status is None:
                continue
            statuses[job.id] = JobStatus(status)
            if JobStatus(status).is_terminal:
                results[job.id] = adapter.fetch(job.external_id or "")
    checkpoint("sync.before_commit")
    now = datetime.now(UTC)
    with ctx.db.transaction() as session:
        for job_id, status in statuses.items():
            job = session.get(JobRecord, job_id)
            assert job is not None
            if job.status == status.value:
                continue
            report.statuses[status.value] = report.statuses.get(status.value, 0) + 1
            job.status = status.value
            if status.is_terminal:
                report.finished += 1
                job.finished_at = now
                result = results[job_id]
                job.error = result.error
                if status is JobStatus.LOST:
                    if _resubmit_lost(session, ctx, job):
                        report.resubmitted += 1
                        continue
                    result = result.model_copy(update={"error": job.error})  # says how often it was lost
                report.measurements += _store_result(session, ctx.campaign, job, result)
        if report.finished:
            record_event(
                session, "results_synced", campaign_id=ctx.campaign_id,
                payload={"finished": report.finished, "measurements": report.measurements,
                         "resubmitted": report.resubmitted},
            )
    return report


def attempt_of(session: Session, job: JobRecord) -> int:
    """0 for a candidate's first job at a fidelity, n for the n-th resubmission of a lost one."""
    return session.scalar(
        select(func.count()).select_from(JobRecord).where(
            JobRecord.campaign_id == job.campaign_id, JobRecord.candidate_id == job.candidate_id,
            JobRecord.fidelity == job.fidelity, JobRecord.id < job.id,
        )
    ) or 0


def _resubmit_lost(session: Session, ctx: LoopContext, job: JobRecord) -> bool:
    """Replace a lost job by a pending one with the next attempt's key; False once the resubmissions are spent.

    The lost job stays in the history (status ``lost``, the executor's words in ``error``); the new job
    belongs to the same batch item, so the history shows both and the candidate is still one experiment.
    """
    tries = attempt_of(session, job) + 1
    if tries > LOST_RESUBMISSIONS:
        job.error = f"lost {tries} times; the last time: {job.error or 'the executor no longer knows the job'}"
        return False
    candidate = session.get(CandidateRecord, job.candidate_id)
    assert candidate is not None
    key = make_idempotency_key(ctx.campaign.name, candidate.fingerprint, job.fidelity, tries)
    session.add(JobRecord(
        campaign_id=job.campaign_id, candidate_id=job.candidate_id, batch_item_id=job.batch_item_id,
        adapter=job.adapter, fidelity=job.fidelity, idempotency_key=key, status=JobStatus.PENDING.value,
        cost=job.cost,
    ))
    record_event(
        session, "job_resubmitted", campaign_id=ctx.campaign_id,
        payload={"lost_job": job.id, "external_id": job.external_id, "error": job.error, "attempt": tries},
    )
    return True


def _store_result(session: Session, campaign: Campaign, job: JobRecord, result: JobResult) -> int:
    """One measurement row per property the job was to measure: a value, or a failure with its reason."""
    measurement = measurement_of(campaign, job.adapter, job.fidelity)
    existing = set(session.scalars(select(MeasurementRecord.property).where(MeasurementRecord.job_id == job.id)))
    stored = 0
    ok = result.status is JobStatus.SUCCEEDED
    for prop in measurement.properties:
        if prop in existing:
            continue
        value = result.properties.get(prop) if ok else None
        error = None
        if value is None:
            error = result.error or (
                f"the lab reported {result.status.value} without a value for {prop!r}" if ok else result.status.value
            )
        session.add(
            MeasurementRecord(
                campaign_id=job.campaign_id,
                candidate_id=job.candidate_id,
                job_id=job.id,
                property=prop,
                value=None if value is None else value.value,
                std=None if value is None else value.std,
                units=None if value is None else value.units,
                fidelity=job.fidelity,
                raw=result.raw,
                failed=value is None,
                error=error,
            )
        )
        stored += 1
    return stored
