"""The database schema: SQLAlchemy 2.0 typed ORM models.

The database is the only source of truth of a campaign (DESIGN.md): every
decision (which pool, which model version, why each candidate, who approved)
and every result can be reconstructed from these tables alone.  The same
models run on SQLite (embedded default) and PostgreSQL (production).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

from agent.store.labels import label_on_insert

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and ±inf replaced by ``None``, at any depth (tuples become lists, as JSON has it).

    JSON has no spelling for them: PostgreSQL's JSONB refuses them (``DataError``, and the step's whole
    transaction with it), while SQLite stores the non-standard ``NaN``/``Infinity`` and reads them back.  ``null``
    is what ``JSON.stringify`` writes for them too, and every reader of these columns already copes with a
    missing number, whereas a string such as ``"-inf"`` in a number's place would break arithmetic elsewhere.
    Whatever mattered about such a value (a lab's NaN) is said in words where it is used (the measurement's
    error), so nothing is lost that anyone could use.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class FiniteJSON(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) that never receives a non-finite number, so both backends store the same.

    It sits at the column type so that no caller can forget it: events, lab payloads, model metrics and
    predictions all pass here.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return json_safe(value)


JSONType = FiniteJSON()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CampaignRecord(Base):
    """A campaign: its validated spec (JSON, with hash) and where it stands."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="created")  # created|running|waiting|stopped|failed
    stop_reason: Mapped[str | None] = mapped_column(Text)
    lock_owner: Mapped[str | None] = mapped_column(String(200))  # host:pid of the process running it
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    iterations: Mapped[list[IterationRecord]] = relationship(back_populates="campaign", order_by="IterationRecord.number")


class IterationRecord(Base):
    """One pass of the loop; ``step`` is the last committed step, so a resumed run knows where to go on."""

    __tablename__ = "iteration"
    __table_args__ = (UniqueConstraint("campaign_id", "number", name="uq_iteration_campaign_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(20), default="started")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id", ondelete="SET NULL"))
    info: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    campaign: Mapped[CampaignRecord] = relationship(back_populates="iterations")


class CandidateRecord(Base):
    """A material the campaign has seen; the fingerprint is unique within a campaign."""

    __tablename__ = "candidate"
    __table_args__ = (UniqueConstraint("campaign_id", "fingerprint", name="uq_candidate_campaign_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    representation: Mapped[dict[str, Any]] = mapped_column(JSONType)
    origin: Mapped[str] = mapped_column(String(100), default="unknown")
    #: what tables and ``matloop history`` show, made once when the row is written (``agent/store/labels.py``)
    label: Mapped[str | None] = mapped_column(Text, nullable=True, default=label_on_insert)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PoolRecord(Base):
    """What a generator produced in one iteration, with its funnel rates (valid, unique, novel, stable)."""

    __tablename__ = "pool"

    id: Mapped[int] = mapped_column(primary_key=True)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"), index=True)
    generator: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BatchRecord(Base):
    """A proposed batch and the decision on it (who, when, note)."""

    __tablename__ = "batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    policy: Mapped[str] = mapped_column(String(30), default="auto")
    approver: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replaces_batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    items: Mapped[list[BatchItemRecord]] = relationship(back_populates="batch", order_by="BatchItemRecord.rank")


class BatchItemRecord(Base):
    """One pick of a batch and why it was picked."""

    __tablename__ = "batch_item"
    __table_args__ = (UniqueConstraint("batch_id", "candidate_id", name="uq_batch_item_batch_candidate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    acquisition_value: Mapped[float | None] = mapped_column(Float)
    posterior_mean: Mapped[float | None] = mapped_column(Float)  # of the first objective
    posterior_std: Mapped[float | None] = mapped_column(Float)
    predictions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # every property: mean, std
    reason: Mapped[str] = mapped_column(Text, default="")
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)  # dropped by the approver
    #: the fidelity this pick is measured at; NULL: every measurement of the campaign (one fidelity, or the
    #: initial design of several)
    fidelity: Mapped[str | None] = mapped_column(String(100), nullable=True)

    batch: Mapped[BatchRecord] = relationship(back_populates="items")
    candidate: Mapped[CandidateRecord] = relationship()


class JobRecord(Base):
    """One submission to an executor; the idempotency key makes re-submission harmless."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_campaign_status", "campaign_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id", ondelete="CASCADE"), index=True)
    batch_item_id: Mapped[int | None] = mapped_column(ForeignKey("batch_item.id", ondelete="SET NULL"), index=True)
    adapter: Mapped[str] = mapped_column(String(100))
    fidelity: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    candidate: Mapped[CandidateRecord] = relationship()


class LedgerEntryRecord(Base):
    """One charge or refund of a job's cost: the campaign's budget ledger (DESIGN.md: every cost charged once).

    A job is charged in the transaction that stores it and refunded at most once, so ``(job_id, kind)`` is
    unique: a second charge of the same job (a resumed run, a repeated step) is impossible at the database
    level, not merely avoided by the code. ``amount`` is signed (a refund is negative), so spend is a plain sum;
    it is in the campaign's ``budget.currency``.
    """

    __tablename__ = "ledger_entry"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", name="uq_ledger_entry_job_kind"),
        CheckConstraint("kind IN ('charge', 'refund')", name="kind"),
        CheckConstraint("(kind = 'charge' AND amount >= 0) OR (kind = 'refund' AND amount <= 0)", name="sign"),
        Index("ix_ledger_entry_campaign_kind", "campaign_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    iteration_id: Mapped[int | None] = mapped_column(ForeignKey("iteration.id", ondelete="SET NULL"))
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    batch_item_id: Mapped[int | None] = mapped_column(ForeignKey("batch_item.id", ondelete="SET NULL"))
    fidelity: Mapped[str] = mapped_column(String(100))
    adapter: Mapped[str] = mapped_column(String(100))
    amount: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(10))  # charge | refund
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MeasurementRecord(Base):
    """A measured property, or a failed attempt to measure it (``failed`` with ``error``)."""

    __tablename__ = "measurement"
    __table_args__ = (
        UniqueConstraint("job_id", "property", name="uq_measurement_job_property"),
        Index("ix_measurement_campaign_property", "campaign_id", "property"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    property: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    std: Mapped[float | None] = mapped_column(Float)
    units: Mapped[str | None] = mapped_column(String(50))
    fidelity: Mapped[str] = mapped_column(String(100), default="default")
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    candidate: Mapped[CandidateRecord] = relationship()


class ModelVersionRecord(Base):
    """A fitted surrogate: what it was trained on (size, hash) and how well it cross-validated."""

    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    iteration_id: Mapped[int | None] = mapped_column(ForeignKey("iteration.id", ondelete="SET NULL", use_alter=True))
    kind: Mapped[str] = mapped_column(String(50))
    objective: Mapped[str] = mapped_column(String(200))
    n_train: Mapped[int] = mapped_column(Integer)
    training_hash: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    artifact_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventRecord(Base):
    """Append-only audit log: every state change, with who or what caused it."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_campaign_created", "campaign_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    iteration_id: Mapped[int | None] = mapped_column(ForeignKey("iteration.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(200), default="matloop")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
