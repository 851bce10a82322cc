"""The response cache (content-addressed) and the call ledger, two tables in one SQL database.

The schema is Alembic's (``migrations/``), like the results store's, so that many processes can
open a fresh cache at once (an llm worker's pool starting) and take turns creating it, and a
later column arrives as a migration. Its version table has its own name, so both stores may
share one database.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from contract import CallRecord, Completion
from services.settings import Settings
from services.store.db import alembic_config, migration_lock

MIGRATIONS = Path(__file__).parent / "migrations"
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


def default_url(settings: Settings) -> str:
    return settings.llm_db_url or f"sqlite:///{settings.cache_dir / 'llm.sqlite'}"


class LLMStore:
    def __init__(self, url: str):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, connect_args={"check_same_thread": False}
                                    if url.startswith("sqlite") else {})
        upgrade(self.engine)
        self._write_lock = threading.Lock()  # SQLite allows one writer at a time

    def get(self, key: str) -> Completion | None:
        with Session(self.engine) as session:
            row = session.get(CachedResponse, key)
            if row is None:
                return None
            return Completion(text=row.text, input_tokens=row.input_tokens,
                              output_tokens=row.output_tokens, top_logprobs=row.top_logprobs)

    def put(self, key: str, completion: Completion) -> None:
        """Cache an answer. Another process asking the same request at the same moment may
        cache it first (two campaign items sending one prompt): its row stays, and that is no error."""
        with self._write_lock, Session(self.engine) as session:
            session.merge(CachedResponse(key=key, created_at=datetime.now(), **completion.model_dump()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()

    def record(self, call: CallRecord) -> None:
        with self._write_lock, Session(self.engine) as session:
            session.add(LedgerRow(**call.model_dump()))
            session.commit()

    def ledger(self) -> list[CallRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(select(LedgerRow).order_by(LedgerRow.id)).all()
            return [CallRecord.model_validate(row, from_attributes=True) for row in rows]

    def cached_count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(CachedResponse)) or 0
