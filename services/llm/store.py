"""The response cache (content-addressed) and the call ledger, two tables in one SQL database."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.llm.schemas import CallRecord, Completion
from services.settings import Settings


class _Base(DeclarativeBase):
    pass


class CachedResponse(_Base):
    __tablename__ = "llm_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    top_logprobs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class LedgerRow(_Base):
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


def default_url(settings: Settings) -> str:
    return settings.llm_db_url or f"sqlite:///{settings.cache_dir / 'llm.sqlite'}"


class LLMStore:
    def __init__(self, url: str):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, connect_args={"check_same_thread": False}
                                    if url.startswith("sqlite") else {})
        _Base.metadata.create_all(self.engine)
        self._write_lock = threading.Lock()  # SQLite allows one writer at a time

    def get(self, key: str) -> Completion | None:
        with Session(self.engine) as session:
            row = session.get(CachedResponse, key)
            if row is None:
                return None
            return Completion(text=row.text, input_tokens=row.input_tokens,
                              output_tokens=row.output_tokens, top_logprobs=row.top_logprobs)

    def put(self, key: str, completion: Completion) -> None:
        with self._write_lock, Session(self.engine) as session:
            session.merge(CachedResponse(key=key, created_at=datetime.now(), **completion.model_dump()))
            session.commit()

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
