"""progress inside a running work item (documents done of total, tokens, seconds)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

A long item (a scan shard, the held-out test scan) writes what it has done here every few
seconds; campaign progress sums it per stage with a rate and an ETA. Plain ADD COLUMN, nullable:
existing items have none.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('work_items', sa.Column('progress', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('work_items', 'progress')  # SQLite >= 3.35 drops a column in place
