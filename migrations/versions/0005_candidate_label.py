"""candidate.label: a candidate's short text form, made once when it is written

``matloop history --format csv`` formatted every candidate's numbers on every call (a fifth of its time with
10^5 rows); the label is now a column with a default (``agent/store/labels.py``). Existing candidates are
labelled here, a chunk at a time, with the same function.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 04:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent.store.labels import describe_candidate

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Candidates labelled per round trip: bounded memory on a campaign of any size.
CHUNK = 5000


def upgrade() -> None:
    with op.batch_alter_table('candidate', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label', sa.Text(), nullable=True))
    candidate = sa.table('candidate', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                         sa.column('representation', sa.JSON), sa.column('label', sa.Text))
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(candidate.c.id, candidate.c.kind, candidate.c.representation)
            .where(candidate.c.id > last, candidate.c.label.is_(None)).order_by(candidate.c.id).limit(CHUNK)
        ).all()
        if not rows:
            break
        bind.execute(
            candidate.update().where(candidate.c.id == sa.bindparam('row_id')).values(label=sa.bindparam('text')),
            [{'row_id': cid, 'text': describe_candidate(kind, _decoded(rep))} for cid, kind, rep in rows],
        )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('candidate', schema=None) as batch_op:
        batch_op.drop_column('label')


def _decoded(representation: object) -> object:
    """The stored JSON as an object (drivers give text or an already decoded value)."""
    if isinstance(representation, str):
        try:
            return json.loads(representation)
        except ValueError:
            return representation
    return representation
