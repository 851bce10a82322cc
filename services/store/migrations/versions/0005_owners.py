"""an owner per campaign and job: the API principal that submitted it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09

Rows stored before this revision keep owner NULL: only admin principals see them.
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('campaigns', 'jobs'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('owner', sa.String(length=64), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_owner'), ['owner'], unique=False)


def downgrade() -> None:
    for table in ('campaigns', 'jobs'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_owner'))
            batch_op.drop_column('owner')
