"""cut answers: the cache keeps why a backend stopped an answer early (a repeating loop)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('llm_cache', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cut', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('llm_cache', schema=None) as batch_op:
        batch_op.drop_column('cut')
