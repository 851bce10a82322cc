"""The response cache (content-addressed), the call ledger and the provider batches that answer
requests in batch mode, in one SQL database.

The schema is Alembic's (``migrations/``), like the results store's, so that many processes can
open a fresh cache at once (an llm worker's pool starting) and take turns creating it, and a
later column arrives as a migration. Its version table has its own name, so both stores may
share one database.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import cast

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Boolean,
    CursorResult,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from lookups import CallRecord, Completion, LLMRequest
from services.settings import Settings
from services.store.db import alembic_config, make_engine, migration_lock

MIGRATIONS = Path(__file__).parent / "migrations"
# What a call's answer cost to make, not what it says: the ledger keeps it, the cache does not.
BILLING_ONLY = {"cache_read_tokens", "cache_write_tokens"}
VERSION_TABLE = "llm_alembic_version"  # not alembic_version: the results store may share the database
MIGRATION_LOCK_KEY = 0x6C6C6D63  # PostgreSQL advisory lock id ("llmc")


class Base(DeclarativeBase):
    pass


class CachedResponse(Base):
    __tablename__ = "llm_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    top_logprobs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    cut: Mapped[str | None] = mapped_column(Text, nullable=True)  # migration 0004


class LedgerRow(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    backend: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    template_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cache_key: Mapped[str] = mapped_column(String(64), index=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    latency_s: Mapped[float] = mapped_column(Float)
    cost_usd: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Of input_tokens, read from or written to the provider's prompt cache (migration 0003).
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class BatchRow(Base):
    """A provider batch (OpenAI Batch, Anthropic Message Batch). ``submitted`` until its results
    are written (``collected``); ``error``: why some of its requests got no answer."""

    __tablename__ = "llm_batches"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the provider's batch id
    backend: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)
    requests: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class BatchRequestRow(Base):
    """A request of a batch, by its cache key (also its custom id at the provider)."""

    __tablename__ = "llm_batch_requests"

    batch_id: Mapped[str] = mapped_column(ForeignKey("llm_batches.id", ondelete="CASCADE"), primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    template_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BatchSummary(BaseModel):
    id: str
    backend: str
    model: str
    status: str
    requests: int
    answered: int
    cost_usd: float
    error: str | None


def upgrade(engine: Engine) -> None:
    """Bring the cache's schema to head, one process at a time (see ``migration_lock``).

    A cache made before its migrations existed (``create_all``: the tables of 0001, no version
    table) is adopted as 0001 without touching its rows, then upgraded like any other.
    """
    from alembic import command

    with migration_lock(engine, MIGRATION_LOCK_KEY) as connection:
        config = alembic_config(MIGRATIONS, connection)
        tables = inspect(connection)
        if tables.has_table(CachedResponse.__tablename__) and not tables.has_table(VERSION_TABLE):
            command.stamp(config, "0001")
        command.upgrade(config, "head")


def _cached_row(key: str, completion: Completion) -> CachedResponse:
    return CachedResponse(key=key, created_at=datetime.now(), **completion.model_dump(exclude=BILLING_ONLY))


def _completion(row: CachedResponse) -> Completion:
    return Completion(text=row.text, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                      top_logprobs=row.top_logprobs, cut=row.cut)


def default_url(settings: Settings) -> str:
    return settings.llm_db_url or f"sqlite:///{settings.cache_dir / 'llm.sqlite'}"


class LLMStore:
    def __init__(self, url: str):
        self.engine = make_engine(url)
        upgrade(self.engine)
        self._write_lock = threading.Lock()  # SQLite allows one writer at a time

    def get(self, key: str) -> Completion | None:
        with Session(self.engine) as session:
            row = session.get(CachedResponse, key)
            if row is None:
                return None
            return _completion(row)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        """The cached answers among these keys, in one query."""
        with Session(self.engine) as session:
            rows = session.scalars(select(CachedResponse).where(CachedResponse.key.in_(set(keys))))
            return {row.key: _completion(row) for row in rows}

    def put(self, key: str, completion: Completion) -> None:
        """Cache an answer. Another process asking the same request at the same moment may
        cache it first (two campaign items sending one prompt): its row stays, and that is no error."""
        with self._write_lock, Session(self.engine) as session:
            session.merge(_cached_row(key, completion))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()

    def record(self, call: CallRecord) -> None:
        self.record_many([call])

    def record_many(self, calls: list[CallRecord]) -> None:
        """Ledger rows in one transaction."""
        if not calls:
            return
        with self._write_lock, Session(self.engine) as session:
            session.execute(insert(LedgerRow), [call.model_dump() for call in calls])  # bulk, no unit of work
            session.commit()

    # ------------------------------------------------------------ provider batches

    def add_batch(self, batch_id: str, backend: str, model: str, requests: dict[str, LLMRequest]) -> None:
        """Record a batch just submitted, with its requests by cache key."""
        with self._write_lock, Session(self.engine) as session:
            session.add(BatchRow(id=batch_id, backend=backend, model=model, status="submitted",
                                 requests=len(requests), created_at=datetime.now()))
            session.flush()
            session.add_all(BatchRequestRow(batch_id=batch_id, cache_key=key, purpose=r.purpose,
                                            template_version=r.template_version) for key, r in requests.items())
            session.commit()

    def open_batches(self, keys: list[str]) -> list[str]:
        """Submitted, not yet collected batches holding any of these requests, oldest first."""
        with Session(self.engine) as session:
            return list(session.scalars(
                select(BatchRow.id).join(BatchRequestRow, BatchRequestRow.batch_id == BatchRow.id)
                .where(BatchRow.status == "submitted", BatchRequestRow.cache_key.in_(keys))
                .group_by(BatchRow.id, BatchRow.created_at).order_by(BatchRow.created_at)))

    def batch_requests(self, batch_id: str) -> list[BatchRequestRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(BatchRequestRow).where(BatchRequestRow.batch_id == batch_id)))

    def collect_batch(self, batch_id: str, answers: dict[str, Completion], errors: dict[str, str],
                      calls: list[CallRecord], error: str | None) -> bool:
        """Write a finished batch's answers to the cache and its ledger rows, and mark it collected,
        in one transaction; False (nothing written) when another process collected it first."""
        with self._write_lock, Session(self.engine) as session:
            claimed = cast(CursorResult, session.execute(
                update(BatchRow).where(BatchRow.id == batch_id, BatchRow.status == "submitted")
                .values(status="collected", finished_at=datetime.now(), error=error, answered=len(answers),
                        cost_usd=sum(c.cost_usd for c in calls))
                .execution_options(synchronize_session=False))).rowcount
            if not claimed:
                session.rollback()
                return False
            for key, completion in answers.items():
                session.merge(_cached_row(key, completion))
            for key, reason in errors.items():
                session.execute(update(BatchRequestRow).where(
                    BatchRequestRow.batch_id == batch_id, BatchRequestRow.cache_key == key).values(error=reason))
            session.add_all(LedgerRow(**call.model_dump()) for call in calls)
            session.commit()
            return True

    def batch_failure(self, key: str) -> str | None:
        """Why the latest batch holding this request left it unanswered, if a batch did."""
        with Session(self.engine) as session:
            row = session.execute(
                select(BatchRow.id, BatchRow.status, BatchRequestRow.error)
                .join(BatchRequestRow, BatchRequestRow.batch_id == BatchRow.id)
                .where(BatchRequestRow.cache_key == key).order_by(BatchRow.created_at.desc()).limit(1)).first()
        if row is None:
            return None
        if row.status == "submitted":
            return f"batch {row.id} has not been collected yet"
        return f"batch {row.id}: {row.error or 'no reason given'}"

    def batches(self, keys: list[str]) -> list[BatchSummary]:
        """The collected batches that answered any of these requests."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(BatchRow).where(BatchRow.status == "collected", BatchRow.id.in_(
                    select(BatchRequestRow.batch_id).where(BatchRequestRow.cache_key.in_(keys))))
                .order_by(BatchRow.created_at))
            return [BatchSummary.model_validate(row, from_attributes=True) for row in rows]
