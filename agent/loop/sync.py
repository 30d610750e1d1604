"""Step 1, sync: poll open jobs on every adapter and store what finished (idempotent, keyed by job).

Adapters are asked first (no transaction open during network calls); then one
transaction writes every status change and result.  A result already stored
for a (job, property) is not stored again, so a sync repeated after a crash
changes nothing.

What an executor answers is untrusted (DESIGN.md), whichever adapter it comes
through: an answer about a job that cannot be read (``LabAnswerError``: an
unknown status, a malformed record) stores the job as failed with the sentence,
instead of failing the same way on every resume; a value that is not a finite
number of sane size, or in units that cannot be converted into the campaign's,
is stored as a failed measurement with its reason; a raw payload too large to keep is replaced by a note
(:mod:`agent.loop.raw_payload`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.loop.context import LoopContext
from agent.loop.faults import checkpoint
from agent.loop.raw_payload import bounded_raw
from agent.policy.budget import refund_reason
from agent.spec import Campaign, Measurement
from agent.store.events import record_event
from agent.store.ledger import charge, iteration_of, refund
from agent.store.models import CandidateRecord, JobRecord, MeasurementRecord
from matloop.types import (
    JobResult,
    JobStatus,
    LabAdapter,
    LabAnswerError,
    PropertyValue,
    make_idempotency_key,
    number_problem,
)
from matloop.units import MAX_UNITS_LENGTH, UnitsError, convert

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
        polled, unreadable = _poll(adapter, [j.external_id for j in jobs if j.external_id])
        for job in jobs:
            reason = unreadable.get(job.external_id or "")
            status = polled.get(job.external_id or "")
            if reason is None and status is not None and JobStatus(status).is_terminal:
                try:
                    results[job.id] = adapter.fetch(job.external_id or "")
                except LabAnswerError as exc:
                    reason = str(exc)
            if reason is not None:
                statuses[job.id] = JobStatus.FAILED
                results[job.id] = JobResult(status=JobStatus.FAILED, error=reason)
            elif status is not None:
                statuses[job.id] = JobStatus(status)
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
                why = refund_reason(ctx.campaign.budget, status)
                if why is not None:
                    refund(session, job, reason=why)
                report.measurements += _store_result(session, ctx.campaign, job, result)
        if report.finished:
            record_event(
                session, "results_synced", campaign_id=ctx.campaign_id,
                payload={"finished": report.finished, "measurements": report.measurements,
                         "resubmitted": report.resubmitted},
            )
    return report


def _poll(adapter: LabAdapter, external_ids: list[str]) -> tuple[dict[str, JobStatus], dict[str, str]]:
    """Statuses of ``external_ids``, and the reason for each id whose answer cannot be read.

    One unreadable answer must not hide the others' statuses: when the poll of all of them raises
    ``LabAnswerError``, each id is polled alone to find which answer it was.
    """
    try:
        return adapter.poll(external_ids), {}
    except LabAnswerError as exc:
        if len(external_ids) == 1:
            return {}, {external_ids[0]: str(exc)}
    polled: dict[str, JobStatus] = {}
    unreadable: dict[str, str] = {}
    for external_id in external_ids:
        try:
            polled.update(adapter.poll([external_id]))
        except LabAnswerError as exc:
            unreadable[external_id] = str(exc)
    return polled, unreadable


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
    rerun = JobRecord(
        campaign_id=job.campaign_id, candidate_id=job.candidate_id, batch_item_id=job.batch_item_id,
        adapter=job.adapter, fidelity=job.fidelity, idempotency_key=key, status=JobStatus.PENDING.value,
        cost=job.cost,
    )
    session.add(rerun)
    # the candidate is still one experiment, paid once: the re-run is charged, the lost job refunded (policy.budget)
    charge(session, rerun, iteration_id=iteration_of(session, job.batch_item_id), reason=f"re-run of lost job {job.id}")
    refund(session, job, reason=refund_reason(ctx.campaign.budget, JobStatus.LOST, rerun=True) or "")
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
    raw = bounded_raw(result.raw)
    for prop in measurement.properties:
        if prop in existing:
            continue
        value = result.properties.get(prop) if ok else None
        error = result.property_errors.get(prop) if ok else None
        if value is not None:
            value, error = usable_value(value, expected_units(campaign, measurement, prop), prop)
        if value is None and error is None:
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
                raw=raw,
                failed=value is None,
                error=error,
            )
        )
        stored += 1
    return stored


def expected_units(campaign: Campaign, measurement: Measurement, prop: str) -> str | None:
    """The units the campaign declared for ``prop``: the measurement's own, else its objective's (None: any)."""
    if prop in measurement.units:
        return measurement.units[prop]
    for objective in campaign.objectives:
        if objective.property == prop and objective.units:
            return objective.units
    return None


def usable_value(value: PropertyValue, units: str | None, prop: str) -> tuple[PropertyValue | None, str | None]:
    """The value in the campaign's units, or None and why it cannot be stored as a measurement.

    Every adapter's values pass here, not only the simulated lab's: a NaN from a DFT parser or an MLIP is as
    unusable as one from a lab, and stored as a success it would poison every later fit.
    """
    problem = number_problem(value.value) or (None if value.std is None else number_problem(value.std, "std"))
    if problem is None and value.std is not None and value.std < 0:
        problem = f"the std {value.std:g} is negative"
    if problem is None:
        try:
            converted, std = convert(value.value, value.std, value.units, units)
        except UnitsError as exc:
            problem = str(exc)
        else:
            problem = number_problem(converted) or (None if std is None else number_problem(std, "std"))
            value = PropertyValue(value=converted, std=std, units=units or value.units)
            if problem is None and value.units is not None and len(value.units) > MAX_UNITS_LENGTH:
                problem = f"its units are longer than the {MAX_UNITS_LENGTH} characters allowed"
    if problem is not None:
        return None, f"the value reported for {prop!r} cannot be used: {problem}"
    return value, None
