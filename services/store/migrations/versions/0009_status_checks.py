"""a CHECK constraint on each status column: campaigns, work items and jobs take only their states

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

The columns stay strings, so no stored value changes. A row whose status is outside its states
(written by hand, or by a bug) fails the upgrade, naming the row, before anything is altered.
The states are copied here, not imported from services.store.statuses: this revision's schema
must not move when the enums change later (tests/integration/test_status_checks.py compares the two).
On SQLite batch mode rebuilds each table; the migration runs with foreign keys off
(services.store.db.migration_lock), so dropping the old campaigns keeps the rows that refer to it.
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

STATES = {
    'campaigns': ('pending', 'running', 'completed', 'completed_with_failures', 'failed', 'cancelled'),
    'work_items': ('pending', 'queued', 'running', 'done', 'failed'),
    'jobs': ('pending', 'queued', 'running', 'done', 'failed'),
}
SHOWN = 20  # bad rows named in the error


def _bad_rows() -> list[str]:
    found = []
    for table, states in STATES.items():
        rows = sa.table(table, sa.column('id'), sa.column('status'))
        for row_id, status in op.get_bind().execute(
                sa.select(rows.c.id, rows.c.status).where(rows.c.status.not_in(states))
                .order_by(rows.c.id).limit(SHOWN)):
            found.append(f"{table} row id {row_id!r} has status {status!r} (allowed: {', '.join(states)})")
    return found


def upgrade() -> None:
    if bad := _bad_rows():
        raise RuntimeError("cannot add the status CHECK constraints (migration 0009): "
                           + "; ".join(bad[:SHOWN]) + ". Correct or delete these rows, then open the store again.")
    for table, states in STATES.items():
        allowed = ", ".join(f"'{state}'" for state in states)
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(f'ck_{table}_status', f"status IN ({allowed})")


def downgrade() -> None:
    for table in STATES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f'ck_{table}_status', type_='check')
