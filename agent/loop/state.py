"""Reading where a campaign stands from the database: iterations, observations, progress.

Every function here only reads; the steps that write use them inside their own
transaction so what they decide on is what they commit against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Subquery, and_, func, or_, select
from sqlalchemy.orm import Session

from agent.policy.stopping import CampaignProgress, is_better
from agent.spec import Campaign
from agent.store.ledger import spent
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CampaignRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
)
from matloop.types import Candidate, JobStatus

#: Iteration steps in the order they commit.  ``step`` on an iteration is the last one committed.
STEPS = ("started", "fitted", "generated", "selected", "approved", "dispatched", "complete")
OPEN_JOB_STATUSES = (JobStatus.PENDING.value, JobStatus.SUBMITTED.value, JobStatus.RUNNING.value)


def step_index(step: str) -> int:
    if step == "rejected":
        return STEPS.index("started")  # a rejected batch sends the iteration back to choosing
    if step == "awaiting_approval":
        return STEPS.index("selected")
    return STEPS.index(step)


def latest_iteration(session: Session, campaign_id: int) -> IterationRecord | None:
    return session.scalar(
        select(IterationRecord)
        .where(IterationRecord.campaign_id == campaign_id)
        .order_by(IterationRecord.number.desc())
        .limit(1)
    )


def latest_recommendation(session: Session, campaign_id: int) -> dict[str, Any] | None:
    """The newest model recommendation stored on an iteration (:mod:`agent.loop.recommend`), with its iteration.

    The stop's pick (on every result, ``"final": True``) wins over the pick made at the last iteration's start.
    """
    numbered = session.execute(
        select(IterationRecord.number, IterationRecord.info)
        .where(IterationRecord.campaign_id == campaign_id)
        .order_by(IterationRecord.number.desc())
    )
    for number, info in numbered:
        final = (info or {}).get("recommended_final") or {}
        if final.get("candidate"):  # fitted at the stop on every result (see agent.loop.fit.final_recommendation)
            return {**final, "iteration": number, "final": True}
        if info and info.get("recommended"):
            return {**info["recommended"], "iteration": number}
    return None


def model_label(pick: dict[str, Any]) -> str:
    """Which model a stored pick came from, in words for the summary."""
    if pick.get("final"):
        return f"model fitted at the stop on all {pick['n_results']} results"
    return f"model of iteration {pick['iteration']}"


def current_batch(session: Session, iteration_id: int) -> BatchRecord | None:
    """The newest batch of an iteration (a rejected batch is replaced by a newer one)."""
    return session.scalar(
        select(BatchRecord).where(BatchRecord.iteration_id == iteration_id).order_by(BatchRecord.id.desc()).limit(1)
    )


def candidate_from_record(record: CandidateRecord) -> Candidate:
    return Candidate.model_validate(record.representation)


def excluded_fingerprints(session: Session, campaign_id: int, target_fidelity: str | None = None) -> set[str]:
    """Candidates never to propose again: dispatched ones, and those a person rejected or dropped.

    With several fidelities (``target_fidelity`` given) a candidate measured only at a cheaper fidelity stays
    eligible, to be promoted; one with a job at the target fidelity, or any job still open, does not.
    """
    dispatched = select(CandidateRecord.fingerprint).join(JobRecord, JobRecord.candidate_id == CandidateRecord.id)
    if target_fidelity is not None:
        dispatched = dispatched.where(
            (JobRecord.fidelity == target_fidelity) | JobRecord.status.in_(OPEN_JOB_STATUSES))
    refused = (
        select(CandidateRecord.fingerprint)
        .join(BatchItemRecord, BatchItemRecord.candidate_id == CandidateRecord.id)
        .join(BatchRecord, BatchRecord.id == BatchItemRecord.batch_id)
        .where((BatchItemRecord.dropped.is_(True)) | (BatchRecord.status == "rejected"))
    )
    return set(session.scalars(dispatched.where(JobRecord.campaign_id == campaign_id))) | set(
        session.scalars(refused.where(BatchRecord.campaign_id == campaign_id))
    )


@dataclass
class Observations:
    """Measured candidates and their values, one row per candidate, one column per property."""

    candidates: list[Candidate] = field(default_factory=list)
    candidate_ids: list[int] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)  # NaN where missing or failed
    variances: list[list[float]] = field(default_factory=list)
    pending: list[Candidate] = field(default_factory=list)  # dispatched, no result yet
    #: Several fidelities: the values at each cheaper fidelity (``candidates``/``values`` are the target's),
    #: and which fidelities each candidate has a job at (what it may not be sent to again).
    cheaper: dict[str, tuple[list[Candidate], list[float]]] = field(default_factory=dict)
    jobs_at: dict[str, set[str]] = field(default_factory=dict)

    @property
    def n_complete(self) -> int:
        return sum(1 for row in self.values if not any(math.isnan(v) for v in row))


def modelled_properties(campaign: Campaign) -> list[str]:
    props = [o.property for o in campaign.objectives]
    return props + [c.property for c in campaign.constraints if c.property not in props]


def observations(session: Session, campaign: Campaign, campaign_id: int) -> Observations:
    """Every measured candidate with its values (failed measurements as NaN), and the pending ones."""
    props = modelled_properties(campaign)
    query = (
        select(MeasurementRecord, CandidateRecord)
        .join(CandidateRecord, CandidateRecord.id == MeasurementRecord.candidate_id)
        .where(MeasurementRecord.campaign_id == campaign_id)
        .order_by(CandidateRecord.id, MeasurementRecord.id)
    )
    if campaign.is_multifidelity:
        query = query.where(MeasurementRecord.fidelity == campaign.target_fidelity)
    rows = session.execute(query).all()
    by_candidate: dict[int, tuple[CandidateRecord, dict[str, tuple[float, float]]]] = {}
    for m, c in rows:
        entry = by_candidate.setdefault(c.id, (c, {}))
        if m.property in props and not m.failed and m.value is not None:
            entry[1][m.property] = (m.value, (m.std or 0.0) ** 2)
        elif m.property in props:
            entry[1].setdefault(m.property, (math.nan, math.nan))
    obs = Observations(properties=props)
    for cid, (record, values) in by_candidate.items():
        obs.candidates.append(candidate_from_record(record))
        obs.candidate_ids.append(cid)
        obs.values.append([values.get(p, (math.nan, math.nan))[0] for p in props])
        obs.variances.append([values.get(p, (math.nan, math.nan))[1] for p in props])
    pending = session.scalars(
        select(CandidateRecord)
        .join(JobRecord, JobRecord.candidate_id == CandidateRecord.id)
        .where(JobRecord.campaign_id == campaign_id, JobRecord.status.in_(OPEN_JOB_STATUSES))
        .distinct()
    )
    obs.pending = [candidate_from_record(r) for r in pending]
    if campaign.is_multifidelity:
        _cheaper_fidelities(session, campaign, campaign_id, obs)
    return obs


def _cheaper_fidelities(session: Session, campaign: Campaign, campaign_id: int, obs: Observations) -> None:
    """Each cheaper fidelity's latest successful value per candidate, and the fidelities each candidate has jobs at."""
    prop = modelled_properties(campaign)[0]
    for fidelity in campaign.fidelities:
        if fidelity == campaign.target_fidelity:
            continue
        latest: dict[int, tuple[CandidateRecord, float]] = {}
        for m, c in session.execute(
            select(MeasurementRecord, CandidateRecord)
            .join(CandidateRecord, CandidateRecord.id == MeasurementRecord.candidate_id)
            .where(MeasurementRecord.campaign_id == campaign_id, MeasurementRecord.fidelity == fidelity,
                   MeasurementRecord.property == prop, MeasurementRecord.failed.is_(False),
                   MeasurementRecord.value.is_not(None))
            .order_by(CandidateRecord.id, MeasurementRecord.id)
        ):
            latest[c.id] = (c, float(m.value))
        obs.cheaper[fidelity] = ([candidate_from_record(c) for c, _ in latest.values()],
                                 [v for _, v in latest.values()])
    for fp, fidelity in session.execute(
        select(CandidateRecord.fingerprint, JobRecord.fidelity)
        .join(JobRecord, JobRecord.candidate_id == CandidateRecord.id)
        .where(JobRecord.campaign_id == campaign_id, JobRecord.status != JobStatus.CANCELLED.value)
        .distinct()
    ):
        obs.jobs_at.setdefault(fp, set()).add(fidelity)


def best_value(campaign: Campaign, obs: Observations) -> tuple[float | None, Candidate | None]:
    """The best measured value of the first objective, and who achieved it."""
    best: float | None = None
    who: Candidate | None = None
    for candidate, row in zip(obs.candidates, obs.values, strict=True):
        value = row[0]
        if not math.isnan(value) and (best is None or is_better(campaign, value, best)):
            best, who = value, candidate
    return best, who


def target_met(campaign: Campaign, obs: Observations) -> bool:
    targets = [(i, o) for i, o in enumerate(campaign.objectives) if o.goal == "target"]
    if not targets:
        return False
    return any(
        all(not math.isnan(row[i]) and o.satisfied_by(row[i]) for i, o in targets) for row in obs.values
    )


def progress(session: Session, campaign: Campaign, campaign_id: int) -> CampaignProgress:
    """A snapshot for the stopping policy and the progress display, from count and aggregate queries.

    It is taken several times per iteration (and every second by the CLI's progress bar), so it never loads
    the observations: with 10^5 measurements that was seconds and hundreds of MB each time. The numbers are
    those :func:`observations` would give (each candidate's latest successful value per property counts).
    """
    record = session.get(CampaignRecord, campaign_id)
    assert record is not None
    budget = spending(session, campaign_id)
    best_history = [
        _info_best(info) for info in session.scalars(
            select(IterationRecord.info)
            .where(IterationRecord.campaign_id == campaign_id, IterationRecord.step == "complete")
            .order_by(IterationRecord.number)
        )
    ]
    props = modelled_properties(campaign)
    latest = _latest_values(campaign_id, props, campaign.target_fidelity if campaign.is_multifidelity else None)
    at_target = (MeasurementRecord.fidelity == campaign.target_fidelity,) if campaign.is_multifidelity else ()
    measured = session.scalar(
        select(func.count(func.distinct(MeasurementRecord.candidate_id))).where(
            MeasurementRecord.campaign_id == campaign_id, *at_target)
    ) or 0
    complete = session.scalar(
        select(func.count()).select_from(
            select(latest.c.candidate_id).group_by(latest.c.candidate_id)
            .having(func.count() == len(set(props))).subquery()
        )
    ) or 0
    first = latest.c.property == props[0]
    with_first = session.scalar(select(func.count()).select_from(latest).where(first)) or 0
    return CampaignProgress(
        experiments=budget.experiments,
        cost=budget.cost,
        completed_iterations=len(best_history),
        elapsed=datetime.now(UTC) - record.created_at,
        results=int(complete),
        failed=int(measured) - int(with_first),
        best=_best_first_objective(session, campaign, latest),
        best_history=best_history,
        target_met=_target_met_by_query(session, campaign, latest),
    )


def spending(session: Session, campaign_id: int) -> CampaignProgress:
    """The budget's part of :func:`progress` (experiments and cost; the rest left at its defaults): all that
    ``remaining_experiments`` and ``remaining_cost`` read, for the steps that ask only that, in two queries."""
    live_jobs = (JobRecord.campaign_id == campaign_id, JobRecord.status != JobStatus.CANCELLED.value)
    experiments = session.scalar(select(func.count(func.distinct(JobRecord.candidate_id))).where(*live_jobs)) or 0
    cost = spent(session, campaign_id)  # the ledger: a lost job re-run is paid once, refunds are netted
    return CampaignProgress(experiments=int(experiments), cost=float(cost))


def _latest_values(campaign_id: int, props: list[str], fidelity: str | None = None) -> Subquery:
    """Each candidate's latest successful value of each modelled property (what :func:`observations` keeps);
    with several fidelities only the target's (a cheap answer is no result: it neither meets a target nor is best)."""
    valid = (
        MeasurementRecord.campaign_id == campaign_id,
        MeasurementRecord.property.in_(props),
        MeasurementRecord.failed.is_(False),
        MeasurementRecord.value.is_not(None),
        *(() if fidelity is None else (MeasurementRecord.fidelity == fidelity,)),
    )
    newest = (
        select(func.max(MeasurementRecord.id).label("id")).where(*valid)
        .group_by(MeasurementRecord.candidate_id, MeasurementRecord.property).subquery()
    )
    return (
        select(MeasurementRecord.candidate_id, MeasurementRecord.property, MeasurementRecord.value)
        .join(newest, newest.c.id == MeasurementRecord.id).subquery()
    )


def _best_first_objective(session: Session, campaign: Campaign, latest: Subquery) -> float | None:
    """The best latest value of the first objective: min, max, or the nearest to its target."""
    objective = campaign.objectives[0]
    mine = latest.c.property == objective.property
    if objective.goal == "minimize":
        best = session.scalar(select(func.min(latest.c.value)).where(mine))
    elif objective.goal == "maximize":
        best = session.scalar(select(func.max(latest.c.value)).where(mine))
    else:
        assert objective.target is not None
        best = session.scalar(
            select(latest.c.value).where(mine)
            .order_by(func.abs(latest.c.value - objective.target), latest.c.candidate_id).limit(1)
        )
    return None if best is None else float(best)


def _target_met_by_query(session: Session, campaign: Campaign, latest: Subquery) -> bool:
    """Whether one candidate's latest values lie in every target objective's band (as :func:`target_met`)."""
    targets = {o.property: o for o in campaign.objectives if o.goal == "target"}
    if not targets:
        return False
    in_band = [
        and_(latest.c.property == prop, func.abs(latest.c.value - o.target) <= o.tolerance)
        for prop, o in targets.items()
    ]
    hit = (
        select(latest.c.candidate_id).where(or_(*in_band)).group_by(latest.c.candidate_id)
        .having(func.count() == len(targets)).limit(1)
    )
    return session.scalar(hit) is not None


def _info_best(info: dict[str, Any] | None) -> float | None:
    value = (info or {}).get("best")
    return None if value is None else float(value)
