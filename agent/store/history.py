"""History queries: what was proposed, approved (by whom), dispatched and measured, as DataFrames.

These are the answers to "why did the campaign do that?", for the CLI and for
notebooks (``from agent.store.history import campaign_history``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, String, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session, aliased

from agent.store.errors import UnknownCampaign
from agent.store.labels import describe_candidate
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CampaignRecord,
    CandidateRecord,
    EventRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    ModelVersionRecord,
)

if TYPE_CHECKING:  # imported where a frame is built: streaming the history never needs pandas
    import pandas as pd

HISTORY_COLUMNS = [
    "iteration", "batch_id", "batch_status", "decision", "approver", "note", "decided_at", "rank", "candidate_id",
    "candidate", "origin", "acquisition_value", "posterior_mean", "posterior_std", "reason", "dropped",
    "model_version", "model_kind", "job_status", "adapter", "fidelity", "idempotency_key", "property", "value", "std",
    "units", "failed", "error", "measured_at",
]
#: Batch statuses that are themselves the decision; later ones (dispatched, complete) hide it (see ``_decision``).
DECISIONS = ("proposed", "approved", "edited", "rejected")
#: Rows fetched from the cursor at a time while streaming: bounded memory whatever the campaign's size.
STREAM_CHUNK = 2000


def _campaign_id(session: Session, name: str) -> int:
    """The id of campaign ``name``; :class:`UnknownCampaign` (listing the known ones) otherwise.

    Not ``agent.store.campaigns.get_campaign``: that module imports the campaign spec's models (pydantic,
    numpy), a fifth of ``matloop history``'s start-up, and history needs only the id.
    """
    campaign_id = session.scalar(select(CampaignRecord.id).where(CampaignRecord.name == name))
    if campaign_id is None:
        raise UnknownCampaign(name, list(session.scalars(select(CampaignRecord.name).order_by(CampaignRecord.name))))
    return campaign_id


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
    import pandas as pd

    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


@dataclass(frozen=True)
class HistoryQuery:
    """Which rows of a campaign's history: one property only (unmeasured items stay), from an iteration on."""

    prop: str | None = None
    since_iteration: int | None = None


def _history_select(
    campaign_id: int, query: HistoryQuery, columns: Callable[[Any], list[Any]] | None = None
) -> Select[Any]:
    """Only the columns a history row needs, as a plain row query (no ORM object per row).

    ``columns`` (given the model version's alias) replaces the typed columns: the CSV's text ones
    (``agent.store.history_csv``) come from the same rows.
    """
    model = aliased(ModelVersionRecord)
    select_rows = (
        select(*(columns or _typed_columns)(model))
        .select_from(BatchItemRecord)
        .join(BatchRecord, BatchRecord.id == BatchItemRecord.batch_id)
        .join(IterationRecord, IterationRecord.id == BatchRecord.iteration_id)
        .join(CandidateRecord, CandidateRecord.id == BatchItemRecord.candidate_id)
        .outerjoin(model, model.id == IterationRecord.model_version_id)
        .outerjoin(JobRecord, JobRecord.batch_item_id == BatchItemRecord.id)
        .outerjoin(MeasurementRecord, MeasurementRecord.job_id == JobRecord.id)
        # the iteration's campaign too (the same one: a batch is its iteration's): SQLite then walks the campaign's
        # iterations in number order on their unique index and sorts only each batch's rows, instead of every row
        .where(BatchRecord.campaign_id == campaign_id, IterationRecord.campaign_id == campaign_id)
    )
    if query.since_iteration is not None:
        select_rows = select_rows.where(IterationRecord.number >= query.since_iteration)
    if query.prop is not None:  # rows of other properties go; items with no measurement at all stay
        select_rows = select_rows.where(
            or_(MeasurementRecord.property.is_(None), MeasurementRecord.property == query.prop)
        )
    return select_rows


def _typed_columns(model: Any) -> list[Any]:
    """A history row's columns as the database's types give them (the notebook frame's values)."""
    return [
        IterationRecord.number,
        BatchRecord.id,
        BatchRecord.status,
        BatchRecord.approver,
        BatchRecord.note,
        BatchRecord.decided_at,
        BatchItemRecord.rank,
        CandidateRecord.id,
        CandidateRecord.kind,
        CandidateRecord.label,
        # only for a row written without its label: the stored JSON as the driver gives it (text on SQLite), as
        # SQLAlchemy's JSON processing cost more than the query itself with 10^5 rows
        case((CandidateRecord.label.is_(None), type_coerce(CandidateRecord.representation, String))),
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
        _fidelity(),
        JobRecord.idempotency_key,
        MeasurementRecord.property,
        MeasurementRecord.value,
        MeasurementRecord.std,
        MeasurementRecord.units,
        MeasurementRecord.failed,
        MeasurementRecord.error,
        MeasurementRecord.created_at,
    ]


def _fidelity() -> Any:
    """Where the row's measurement went: the job's fidelity, or before dispatch the pick's (a multi-fidelity
    campaign's select step names one per pick; its initial design's picks go to every fidelity, one job each)."""
    return func.coalesce(JobRecord.fidelity, BatchItemRecord.fidelity)


#: Rows in the order a campaign made them: an item's jobs (a multi-fidelity pick measured at several fidelities, a
#: job re-dispatched after a loss) by job id, so the same history reads the same twice on either database.
_ORDER = (IterationRecord.number, BatchRecord.id, BatchItemRecord.rank, MeasurementRecord.property, JobRecord.id)


def _edited_batches(session: Session, campaign_id: int) -> set[int]:
    """Batches from which the approver dropped candidates (their status moves on to dispatched/complete)."""
    return set(session.scalars(
        select(BatchRecord.id).distinct()
        .join(BatchItemRecord, BatchItemRecord.batch_id == BatchRecord.id)
        .where(BatchRecord.campaign_id == campaign_id, BatchItemRecord.dropped.is_(True))
    ))


def _decision(status: str, batch_id: int, edited: set[int]) -> str:
    """The decision on a batch: its status while that says it, else approved or edited (some dropped)."""
    if status in DECISIONS:
        return status
    return "edited" if batch_id in edited else "approved"


def _decoded(representation: Any) -> Any:
    """A representation as a Python object (PostgreSQL's driver decodes JSONB itself; SQLite gives text)."""
    if not isinstance(representation, str | bytes):
        return representation
    try:
        return json.loads(representation)
    except ValueError:
        return representation  # shown as stored


class _Rows:
    """Turns raw query rows into history rows in ``HISTORY_COLUMNS`` order."""

    def __init__(self, edited: set[int]) -> None:
        self.edited = edited
        self._last: tuple[int, str] | None = None  # rows come grouped by item: describe each candidate once

    def __call__(self, r: Any) -> tuple[Any, ...]:
        (it, batch_id, bstatus, approver, note, decided, rank, cid, kind, label, rep, origin, acq, mean, std, reason,
         dropped, mv_id, mv_kind, jstatus, adapter, fidelity, key, mprop, value, mstd, units, failed, error,
         measured) = r
        if self._last is None or self._last[0] != cid:
            self._last = (cid, label if label is not None else describe_candidate(kind, _decoded(rep)))
        return (it, batch_id, bstatus, _decision(bstatus, batch_id, self.edited), approver, note, decided, rank, cid,
                self._last[1], origin, acq, mean, std, reason, bool(dropped), mv_id, mv_kind, jstatus, adapter,
                fidelity, key, mprop, value, mstd, units, failed, error, measured)


def iter_history(
    session: Session, name: str, *, prop: str | None = None, since_iteration: int | None = None
) -> Iterator[tuple[Any, ...]]:
    """Every history row of campaign ``name`` in order, streamed (``HISTORY_COLUMNS``; one row per property).

    Rows come from a server-side cursor in chunks of :data:`STREAM_CHUNK`, so memory stays flat with 10^5+
    measurements; the session must stay open while the iterator is consumed.
    """
    campaign_id = _campaign_id(session, name)
    to_row = _Rows(_edited_batches(session, campaign_id))
    query = _history_select(campaign_id, HistoryQuery(prop, since_iteration)).order_by(*_ORDER)
    # Core, not the ORM: these are plain column rows, and the ORM's per-row bookkeeping was a fifth of the time
    result = session.connection().execution_options(yield_per=STREAM_CHUNK).execute(query)
    for row in result:
        yield to_row(row)


def has_fidelities(session: Session, name: str) -> bool:
    """Whether campaign ``name`` measures at more than one fidelity (its stored spec's measurements name several).

    Read from the stored JSON, not the spec's models: ``matloop history`` does not import those (see
    :func:`_campaign_id`); a spec this version cannot read counts as single-fidelity.
    """
    spec = session.scalar(select(CampaignRecord.spec).where(CampaignRecord.name == name))
    measurements = spec.get("measurements") if isinstance(spec, dict) else None
    if not isinstance(measurements, list):
        return False
    return len({str(m.get("fidelity", "default")) for m in measurements if isinstance(m, dict)}) > 1


def count_history(session: Session, name: str, *, prop: str | None = None, since_iteration: int | None = None) -> int:
    """How many rows :func:`iter_history` would give, by one count query."""
    campaign_id = _campaign_id(session, name)
    rows = _history_select(campaign_id, HistoryQuery(prop, since_iteration)).subquery()
    return int(session.scalar(select(func.count()).select_from(rows)) or 0)


def recent_history(
    session: Session, name: str, limit: int, *, prop: str | None = None, since_iteration: int | None = None
) -> tuple[list[tuple[Any, ...]], int]:
    """The newest ``limit`` history rows (in order) and how many there are in all: what a table can show.

    One query with ``ORDER BY ... DESC LIMIT`` and, only when that fills the limit, one count query: neither
    loads the rows left out.
    """
    campaign_id = _campaign_id(session, name)
    to_row = _Rows(_edited_batches(session, campaign_id))
    query = _history_select(campaign_id, HistoryQuery(prop, since_iteration))
    newest_first = [c.desc() for c in _ORDER]
    # Each item gives at least one row, so the newest rows lie among the newest ``limit`` items: found without
    # the job and measurement joins, they spare sorting every row of the campaign.
    items = (
        select(BatchItemRecord.id)
        .join(BatchRecord, BatchRecord.id == BatchItemRecord.batch_id)
        .join(IterationRecord, IterationRecord.id == BatchRecord.iteration_id)
        .where(BatchRecord.campaign_id == campaign_id)
        .order_by(*newest_first[:3]).limit(limit)
    )
    if since_iteration is not None:
        items = items.where(IterationRecord.number >= since_iteration)
    newest = session.execute(
        query.where(BatchItemRecord.id.in_(items.scalar_subquery())).order_by(*newest_first).limit(limit)
    ).all()
    total = count_history(session, name, prop=prop, since_iteration=since_iteration)
    if len(newest) < min(limit, total):  # --property left some of those items without a row: look further
        newest = session.execute(query.order_by(*newest_first).limit(limit)).all()
    return [to_row(r) for r in reversed(newest)], total


def campaign_history(
    session: Session, name: str, *, prop: str | None = None, since_iteration: int | None = None
) -> pd.DataFrame:
    """Every batch item of campaign ``name`` with its decision, job and measurements (one row per property).

    A batch item with no measurement yet appears once with empty measurement columns; items the approver
    dropped and batches that were rejected appear too (``dropped``, ``decision``). The notebook API: for very
    large campaigns :func:`iter_history` streams the same rows without building a frame.
    """
    import pandas as pd

    rows = list(iter_history(session, name, prop=prop, since_iteration=since_iteration))
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def measurements_frame(session: Session, name: str) -> pd.DataFrame:
    """All measurements of a campaign with their candidate (for training and notebooks)."""
    campaign_id = _campaign_id(session, name)
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
        .where(MeasurementRecord.campaign_id == campaign_id)
        .order_by(MeasurementRecord.id)
    ).all()
    import pandas as pd

    return pd.DataFrame(
        [(cid, describe_candidate(k, rep), p, v, s, u, f, failed, e, t) for cid, k, rep, p, v, s, u, f, failed, e, t in rows],
        columns=["candidate_id", "candidate", "property", "value", "std", "units", "fidelity", "failed", "error",
                 "measured_at"],
    )


#: Events that end a run (``flows/campaign.py``, ``agent/loop/iteration.py``): an override recorded before one of
#: these belonged to a run that is over.
RUN_END_EVENTS = ("campaign_stopped", "campaign_failed", "run_paused", "run_interrupted", "run_failed")


@dataclass(frozen=True)
class EffectiveApproval:
    """The approval policy a campaign's latest run used, and where it came from."""

    policy: str
    spec_policy: str
    source: str  # "spec", "this run's override" or "the last run's override"

    def __str__(self) -> str:
        if self.source == "spec":
            return self.policy
        return f"{self.policy} ({self.source}; the spec says {self.spec_policy})"


def effective_approval(session: Session, campaign_id: int, spec_policy: str) -> EffectiveApproval:
    """The approval policy in force: a run's ``--approval`` override (an ``approval_override`` event) or the spec's.

    The override lasts for its run: it is this run's while no run-end event follows it, the last run's when a
    run-end follows and nothing after, and gone once a later run has left any event (that run used the spec).
    """
    override = session.execute(
        select(EventRecord.id, EventRecord.payload)
        .where(EventRecord.campaign_id == campaign_id, EventRecord.kind == "approval_override")
        .order_by(EventRecord.id.desc()).limit(1)
    ).first()
    policy = (override.payload or {}).get("policy") if override is not None else None
    if override is None or not isinstance(policy, str):
        return EffectiveApproval(spec_policy, spec_policy, "spec")
    ended = session.scalar(
        select(func.min(EventRecord.id)).where(
            EventRecord.campaign_id == campaign_id, EventRecord.id > override.id, EventRecord.kind.in_(RUN_END_EVENTS)
        )
    )
    if ended is None:
        return EffectiveApproval(policy, spec_policy, "this run's override")
    later = session.scalar(
        select(func.count()).select_from(EventRecord).where(EventRecord.campaign_id == campaign_id,
                                                           EventRecord.id > ended)
    )
    if later:
        return EffectiveApproval(spec_policy, spec_policy, "spec")
    return EffectiveApproval(policy, spec_policy, "the last run's override")
