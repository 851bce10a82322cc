"""provider batches (batch mode): llm_batches and their requests, llm_batch_requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('llm_batches',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('backend', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('llm_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_llm_batches_status'), ['status'], unique=False)
    op.create_table('llm_batch_requests',
    sa.Column('batch_id', sa.String(length=200), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('template_version', sa.String(length=32), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['llm_batches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'cache_key')
    )
    with op.batch_alter_table('llm_batch_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_llm_batch_requests_cache_key'), ['cache_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('llm_batch_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_batch_requests_cache_key'))
    op.drop_table('llm_batch_requests')
    with op.batch_alter_table('llm_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_batches_status'))
    op.drop_table('llm_batches')
