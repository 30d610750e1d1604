"""batch_item.fidelity: which fidelity a pick is measured at

A campaign that measures a property at several fidelities sends each pick to one of them; the pick stores which.
NULL means every measurement of the campaign, as before this column (single-fidelity campaigns, and the initial
design of a multi-fidelity one, which measures each point at every fidelity to learn how they relate).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('batch_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fidelity', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batch_item', schema=None) as batch_op:
        batch_op.drop_column('fidelity')
