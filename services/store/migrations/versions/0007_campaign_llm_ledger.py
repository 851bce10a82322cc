"""a campaign's LLM spending and in-flight reservations, shared by every process

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Workers reserve a call's worst-case cost here before making it (one conditional UPDATE), so
several processes together never pass the campaign's budget. Existing campaigns start with what
their stored results cost. Plain ADD COLUMN: a batch rebuild of campaigns on SQLite would
cascade-delete every row that references a campaign (see 0006).
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ('llm_spent_usd', 'llm_reserved_usd'):
        op.add_column('campaigns', sa.Column(column, sa.Float(), nullable=False, server_default='0'))
    costs = " + ".join(f"(SELECT coalesce(sum(cost_usd), 0) FROM {table} WHERE {table}.campaign_id = campaigns.id)"
                       for table in ('explanations', 'classifications', 'agent_rounds'))
    op.execute(f"UPDATE campaigns SET llm_spent_usd = {costs}")


def downgrade() -> None:
    for column in ('llm_reserved_usd', 'llm_spent_usd'):
        op.drop_column('campaigns', column)  # SQLite >= 3.35 drops a column in place
