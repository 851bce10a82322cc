"""campaign status wide enough for completed_with_failures

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10

SQLite does not enforce a VARCHAR's length, so there is nothing to change there; and changing a
column type in SQLite means recreating the table, whose DROP would cascade-delete every row
that references a campaign (the store runs with foreign keys on).
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    op.alter_column('campaigns', 'status', existing_type=sa.String(length=16), type_=sa.String(length=32),
                    existing_nullable=False)


def downgrade() -> None:
    op.execute("UPDATE campaigns SET status = 'completed' WHERE status = 'completed_with_failures'")
    if op.get_bind().dialect.name == 'sqlite':
        return
    op.alter_column('campaigns', 'status', existing_type=sa.String(length=32), type_=sa.String(length=16),
                    existing_nullable=False)
