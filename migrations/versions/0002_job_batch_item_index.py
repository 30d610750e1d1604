"""index job.batch_item_id

History joins each batch item to its jobs: without an index SQLite built one for every query and PostgreSQL
could only hash the whole job table before the first row (``matloop history --format csv``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 02:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_batch_item_id'), ['batch_item_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_batch_item_id'))
