"""The campaign's budget ledger: charging a job's cost when it is stored, refunding it, and reading the spend.

Every cost is charged once (DESIGN.md). A job is charged in the very transaction that stores it, so a crash
leaves either the job and its charge or neither; a resumed run finds the job already stored and charges
nothing (and were any code path to try, ``uq_ledger_entry_job_kind`` refuses a second charge of one job). A
refund is the charge's amount, negative, at most once per job. Who gets a refund is the policy's word
(:func:`agent.policy.budget.refund_reason`); this module only writes and sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from agent.store.models import BatchItemRecord, BatchRecord, IterationRecord, JobRecord, LedgerEntryRecord

CHARGE = "charge"
REFUND = "refund"


def iteration_of(session: Session, batch_item_id: int | None) -> int | None:
    """The iteration whose batch picked the job's candidate (a re-run of a lost job is spent on it too)."""
    if batch_item_id is None:
        return None
    return session.scalar(
        select(BatchRecord.iteration_id).join(BatchItemRecord, BatchItemRecord.batch_id == BatchRecord.id)
        .where(BatchItemRecord.id == batch_item_id)
    )


def charge(session: Session, job: JobRecord, *, iteration_id: int | None, reason: str) -> LedgerEntryRecord:
    """Charge ``job``'s cost; call it in the transaction that adds the job (it flushes to learn the job's id)."""
    if job.id is None:
        session.flush()
    entry = LedgerEntryRecord(
        campaign_id=job.campaign_id, iteration_id=iteration_id, job_id=job.id, batch_item_id=job.batch_item_id,
        fidelity=job.fidelity, adapter=job.adapter, amount=float(job.cost or 0.0), kind=CHARGE, reason=reason,
    )
    session.add(entry)
    return entry


def refund(session: Session, job: JobRecord, *, reason: str) -> LedgerEntryRecord | None:
    """Give back what ``job`` was charged; nothing when it was never charged or is refunded already."""
    entries = {e.kind: e for e in session.scalars(select(LedgerEntryRecord).where(LedgerEntryRecord.job_id == job.id))}
    charged = entries.get(CHARGE)
    if charged is None or REFUND in entries:
        return None
    entry = LedgerEntryRecord(
        campaign_id=charged.campaign_id, iteration_id=charged.iteration_id, job_id=job.id,
        batch_item_id=charged.batch_item_id, fidelity=charged.fidelity, adapter=charged.adapter,
        amount=-charged.amount, kind=REFUND, reason=reason,
    )
    session.add(entry)
    return entry


def spent(session: Session, campaign_id: int) -> float:
    """What the campaign has spent: its charges less its refunds."""
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntryRecord.amount), 0.0)).where(LedgerEntryRecord.campaign_id == campaign_id)
    )
    return float(total or 0.0)


@dataclass
class SpendRow:
    """Spend on one group (a fidelity, an adapter, an iteration): charged, refunded (positive), and net."""

    key: str
    jobs: int = 0
    charged: float = 0.0
    refunded: float = 0.0

    @property
    def net(self) -> float:
        return self.charged - self.refunded


@dataclass
class LedgerTotals:
    """The ledger of one campaign summed three ways, and in all."""

    charged: float = 0.0
    refunded: float = 0.0
    jobs: int = 0
    by_fidelity: list[SpendRow] = field(default_factory=list)
    by_adapter: list[SpendRow] = field(default_factory=list)
    by_iteration: list[SpendRow] = field(default_factory=list)
    by_fidelity_adapter: list[SpendRow] = field(default_factory=list)

    @property
    def net(self) -> float:
        return self.charged - self.refunded


def ledger_totals(session: Session, campaign_id: int) -> LedgerTotals:
    """Charges, refunds and job counts by fidelity, adapter, (fidelity, adapter) and iteration: aggregates only."""
    totals = LedgerTotals()
    charged = func.coalesce(func.sum(case((LedgerEntryRecord.kind == CHARGE, LedgerEntryRecord.amount), else_=0.0)),
                            0.0)
    refunded = func.coalesce(func.sum(case((LedgerEntryRecord.kind == REFUND, -LedgerEntryRecord.amount),
                                           else_=0.0)), 0.0)
    jobs = func.count(func.distinct(case((LedgerEntryRecord.kind == CHARGE, LedgerEntryRecord.job_id))))
    mine = LedgerEntryRecord.campaign_id == campaign_id

    def rows(*keys) -> list[tuple]:
        query = select(*keys, jobs, charged, refunded).where(mine)
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        return list(session.execute(query))

    for n, c, r in rows():
        totals.jobs, totals.charged, totals.refunded = int(n), float(c), float(r)
    totals.by_fidelity = [SpendRow(str(k), int(n), float(c), float(r)) for k, n, c, r in rows(LedgerEntryRecord.fidelity)]
    totals.by_adapter = [SpendRow(str(k), int(n), float(c), float(r)) for k, n, c, r in rows(LedgerEntryRecord.adapter)]
    totals.by_fidelity_adapter = [
        SpendRow(f"{f} / {a}", int(n), float(c), float(r))
        for f, a, n, c, r in rows(LedgerEntryRecord.fidelity, LedgerEntryRecord.adapter)
    ]
    by_iteration = (
        select(IterationRecord.number, jobs, charged, refunded)
        .select_from(LedgerEntryRecord)
        .outerjoin(IterationRecord, IterationRecord.id == LedgerEntryRecord.iteration_id)
        .where(mine).group_by(IterationRecord.number).order_by(IterationRecord.number)
    )
    totals.by_iteration = [
        SpendRow("—" if number is None else str(number), int(n), float(c), float(r))
        for number, n, c, r in session.execute(by_iteration)
    ]
    return totals
