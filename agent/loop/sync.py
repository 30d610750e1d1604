"""Step 1, sync: poll open jobs on every adapter and store what finished (idempotent, keyed by job).

Adapters are asked first (no transaction open during network calls); then one
transaction writes every status change and result.  A result already stored
for a (job, property) is not stored again, so a sync repeated after a crash
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.faults import checkpoint
from agent.spec import Campaign, Measurement
from agent.store.events import record_event
from agent.store.models import JobRecord, MeasurementRecord
from matloop.types import JobResult, JobStatus


@dataclass
class SyncReport:
    polled: int = 0
    finished: int = 0
    measurements: int = 0
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
                report.measurements += _store_result(session, ctx.campaign, job, result)
        if report.finished:
            record_event(
                session, "results_synced", campaign_id=ctx.campaign_id,
                payload={"finished": report.finished, "measurements": report.measurements},
            )
    return report


def _store_result(session, campaign: Campaign, job: JobRecord, result: JobResult) -> int:  # type: ignore[no-untyped-def]
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
