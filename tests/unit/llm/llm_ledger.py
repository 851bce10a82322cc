"""The LLM store's call ledger, read back. The services only write it (operators read it with
SQL); the tests check by it which calls were made and what they cost."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lookups import CallRecord
from services.llm.store import LedgerRow, LLMStore


def ledger_rows(store: LLMStore) -> list[CallRecord]:
    """Every call the store has recorded, oldest first."""
    with Session(store.engine) as session:
        rows = session.scalars(select(LedgerRow).order_by(LedgerRow.id)).all()
        return [CallRecord.model_validate(row, from_attributes=True) for row in rows]
