"""a scorer per classification and score: several scorers judge the same head

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# 0001 left these unique constraints unnamed: PostgreSQL names them <table>_<columns>_key; on
# SQLite batch mode reflects them and names them by this convention.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _old_name(table: str) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"uq_{table}_head_id_control"
    return f"{table}_head_id_control_key"


def upgrade() -> None:
    for table in ("classifications", "scores"):
        with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.add_column(sa.Column('scorer', sa.String(length=32), nullable=False,
                                          server_default='zero-shot'))
            batch_op.drop_constraint(_old_name(table), type_='unique')
            batch_op.create_unique_constraint(f'uq_{table}_head_scorer_control',
                                              ['head_id', 'scorer', 'control'])


def downgrade() -> None:
    for table in ("classifications", "scores"):
        with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint(f'uq_{table}_head_scorer_control', type_='unique')
            batch_op.drop_column('scorer')
            batch_op.create_unique_constraint(_old_name(table), ['head_id', 'control'])
