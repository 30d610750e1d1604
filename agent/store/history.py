"""History queries: what was proposed, approved (by whom), dispatched and measured, as DataFrames.

These are the answers to "why did the campaign do that?", for the CLI and for
notebooks (``from agent.store.history import campaign_history``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from agent.store.campaigns import get_campaign
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CampaignRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    ModelVersionRecord,
)

HISTORY_COLUMNS = [
    "iteration", "batch_id", "batch_status", "approver", "decided_at", "rank", "candidate_id", "candidate",
    "origin", "acquisition_value", "posterior_mean", "posterior_std", "reason", "dropped", "model_version",
    "model_kind", "job_status", "adapter", "fidelity", "idempotency_key", "property", "value", "std", "units",
    "failed", "error", "measured_at",
]


def campaigns_overview(session: Session) -> pd.DataFrame:
    """One row per campaign: status, iterations, experiments, measurements."""
    iterations = (
        select(IterationRecord.campaign_id, func.count(IterationRecord.id).label("iterations"))
        .group_by(IterationRecord.campaign_id)
        .subquery()
    )
    jobs = (
        select(JobRecord.campaign_id, func.count(JobRecord.id).label("experiments"))
        .group_by(JobRecord.campaign_id)
        .subquery()
    )
    measurements = (
        select(MeasurementRecord.campaign_id, func.count(MeasurementRecord.id).label("measurements"))
        .group_by(MeasurementRecord.campaign_id)
        .subquery()
    )
    rows = session.execute(
        select(
            CampaignRecord.name,
            CampaignRecord.status,
            CampaignRecord.stop_reason,
            func.coalesce(iterations.c.iterations, 0),
            func.coalesce(jobs.c.experiments, 0),
            func.coalesce(measurements.c.measurements, 0),
            CampaignRecord.created_at,
            CampaignRecord.updated_at,
        )
        .outerjoin(iterations, iterations.c.campaign_id == CampaignRecord.id)
        .outerjoin(jobs, jobs.c.campaign_id == CampaignRecord.id)
        .outerjoin(measurements, measurements.c.campaign_id == CampaignRecord.id)
        .order_by(CampaignRecord.name)
    ).all()
    columns = ["name", "status", "stop_reason", "iterations", "experiments", "measurements", "created_at", "updated_at"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def campaign_history(
    session: Session, name: str, *, prop: str | None = None, since_iteration: int | None = None
) -> pd.DataFrame:
    """Every batch item of campaign ``name`` with its decision, job and measurements (one row per property).

    A batch item with no measurement yet appears once with empty measurement columns.
    """
    campaign = get_campaign(session, name)
    model = aliased(ModelVersionRecord)
    query = (
        select(
            IterationRecord.number,
            BatchRecord.id,
            BatchRecord.status,
            BatchRecord.approver,
            BatchRecord.decided_at,
            BatchItemRecord.rank,
            CandidateRecord.id,
            CandidateRecord.kind,
            CandidateRecord.representation,
            CandidateRecord.origin,
            BatchItemRecord.acquisition_value,
            BatchItemRecord.posterior_mean,
            BatchItemRecord.posterior_std,
            BatchItemRecord.reason,
            BatchItemRecord.dropped,
            model.id,
            model.kind,
            JobRecord.status,
            JobRecord.adapter,
            JobRecord.fidelity,
            JobRecord.idempotency_key,
            MeasurementRecord.property,
            MeasurementRecord.value,
            MeasurementRecord.std,
            MeasurementRecord.units,
            MeasurementRecord.failed,
            MeasurementRecord.error,
            MeasurementRecord.created_at,
        )
        .select_from(BatchItemRecord)
        .join(BatchRecord, BatchRecord.id == BatchItemRecord.batch_id)
        .join(IterationRecord, IterationRecord.id == BatchRecord.iteration_id)
        .join(CandidateRecord, CandidateRecord.id == BatchItemRecord.candidate_id)
        .outerjoin(model, model.id == IterationRecord.model_version_id)
        .outerjoin(JobRecord, JobRecord.batch_item_id == BatchItemRecord.id)
        .outerjoin(MeasurementRecord, MeasurementRecord.job_id == JobRecord.id)
        .where(BatchRecord.campaign_id == campaign.id)
        .order_by(IterationRecord.number, BatchRecord.id, BatchItemRecord.rank, MeasurementRecord.property)
    )
    if since_iteration is not None:
        query = query.where(IterationRecord.number >= since_iteration)
    rows = []
    for r in session.execute(query).all():
        (it, batch_id, bstatus, approver, decided, rank, cid, kind, rep, origin, acq, mean, std, reason, dropped,
         mv_id, mv_kind, jstatus, adapter, fidelity, key, mprop, value, mstd, units, failed, error, measured) = r
        if prop is not None and mprop not in (None, prop):
            continue
        rows.append(
            [it, batch_id, bstatus, approver, decided, rank, cid, describe_candidate(kind, rep), origin, acq, mean,
             std, reason, dropped, mv_id, mv_kind, jstatus, adapter, fidelity, key, mprop, value, mstd, units, failed,
             error, measured]
        )
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def measurements_frame(session: Session, name: str) -> pd.DataFrame:
    """All measurements of a campaign with their candidate (for training and notebooks)."""
    campaign = get_campaign(session, name)
    rows = session.execute(
        select(
            MeasurementRecord.candidate_id,
            CandidateRecord.kind,
            CandidateRecord.representation,
            MeasurementRecord.property,
            MeasurementRecord.value,
            MeasurementRecord.std,
            MeasurementRecord.units,
            MeasurementRecord.fidelity,
            MeasurementRecord.failed,
            MeasurementRecord.error,
            MeasurementRecord.created_at,
        )
        .join(CandidateRecord, CandidateRecord.id == MeasurementRecord.candidate_id)
        .where(MeasurementRecord.campaign_id == campaign.id)
        .order_by(MeasurementRecord.id)
    ).all()
    return pd.DataFrame(
        [(cid, describe_candidate(k, rep), p, v, s, u, f, failed, e, t) for cid, k, rep, p, v, s, u, f, failed, e, t in rows],
        columns=["candidate_id", "candidate", "property", "value", "std", "units", "fidelity", "failed", "error",
                 "measured_at"],
    )


def describe_candidate(kind: str, representation: dict[str, Any]) -> str:
    """A compact text form of a stored candidate for tables."""
    from matloop.types import Candidate

    try:
        return Candidate.model_validate(representation).label(max_len=80)
    except Exception:  # noqa: BLE001 - an old or foreign representation still gets shown
        return f"{kind}:{str(representation)[:60]}"
