"""The durable results store (SQLAlchemy): SQLite file by default, PostgreSQL by URL."""

from services.store.db import Store

__all__ = ["Store"]
