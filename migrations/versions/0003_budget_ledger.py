"""the budget ledger: one charge per job, at most one refund

Every job's cost is charged to the ledger when the job is stored (and refunded when the campaign's policy says
so); existing jobs get their charges backfilled here, with the refunds the ledger's rules give them: a cancelled
job, and a lost job that was run again (its re-run is the charge that stands), are refunded. A failed job keeps
its charge, as ``budget.on_failure`` defaults to ``keep`` and no stored campaign could have said otherwise.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 03:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agent.store.models

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHARGES = """
INSERT INTO ledger_entry (campaign_id, iteration_id, job_id, batch_item_id, fidelity, adapter, amount, kind, reason,
                          created_at)
SELECT j.campaign_id, b.iteration_id, j.id, j.batch_item_id, j.fidelity, j.adapter, j.cost, 'charge',
       'backfilled by migration 0003 (charged when the job was stored)', j.created_at
FROM job j
LEFT JOIN batch_item bi ON bi.id = j.batch_item_id
LEFT JOIN batch b ON b.id = bi.batch_id
"""

_REFUNDS = """
INSERT INTO ledger_entry (campaign_id, iteration_id, job_id, batch_item_id, fidelity, adapter, amount, kind, reason,
                          created_at)
SELECT j.campaign_id, b.iteration_id, j.id, j.batch_item_id, j.fidelity, j.adapter, -j.cost, 'refund',
       CASE WHEN j.status = 'cancelled' THEN 'backfilled by migration 0003: cancelled at the executor'
            ELSE 'backfilled by migration 0003: lost by the executor and run again as a new job' END,
       COALESCE(j.finished_at, j.updated_at)
FROM job j
LEFT JOIN batch_item bi ON bi.id = j.batch_item_id
LEFT JOIN batch b ON b.id = bi.batch_id
WHERE j.status = 'cancelled'
   OR (j.status = 'lost' AND EXISTS (
        SELECT 1 FROM job later
        WHERE later.campaign_id = j.campaign_id AND later.candidate_id = j.candidate_id
          AND later.fidelity = j.fidelity AND later.id > j.id))
"""


def upgrade() -> None:
    op.create_table('ledger_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('iteration_id', sa.Integer(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('batch_item_id', sa.Integer(), nullable=True),
    sa.Column('fidelity', sa.String(length=100), nullable=False),
    sa.Column('adapter', sa.String(length=100), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', agent.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('charge', 'refund')", name=op.f('ck_ledger_entry_kind')),
    sa.CheckConstraint("(kind = 'charge' AND amount >= 0) OR (kind = 'refund' AND amount <= 0)",
                       name=op.f('ck_ledger_entry_sign')),
    sa.ForeignKeyConstraint(['batch_item_id'], ['batch_item.id'],
                            name=op.f('fk_ledger_entry_batch_item_id_batch_item'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_ledger_entry_campaign_id_campaign'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['iteration_id'], ['iteration.id'], name=op.f('fk_ledger_entry_iteration_id_iteration'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_ledger_entry_job_id_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entry')),
    sa.UniqueConstraint('job_id', 'kind', name='uq_ledger_entry_job_kind')
    )
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entry_campaign_kind', ['campaign_id', 'kind'], unique=False)
    op.execute(_CHARGES)
    op.execute(_REFUNDS)


def downgrade() -> None:
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entry_campaign_kind')
    op.drop_table('ledger_entry')
