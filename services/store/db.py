"""Engine and sessions for the results store, with the schema brought up to date by Alembic;
the engine factory the LLM store uses too."""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # alembic is imported when a store migrates, not when this module loads
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6C6F6F6B  # PostgreSQL advisory lock id ("look")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Several worker processes (and an llm worker's threads) share one SQLite file: WAL lets
    # readers run beside the writer, and the busy timeout makes writers wait their turn instead
    # of failing after sqlite3's default 5 s.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """The engine of a store (results or LLM cache), the same set-up for both: a SQLite file's
    folder created, its pragmas set on each connection, stale pooled connections replaced."""
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _sqlite_migration(connection: Connection) -> Iterator[None]:
    """What SQLite needs to change a schema safely (its ALTER TABLE page; Alembic's batch mode
    docs). Foreign keys off: batch mode rebuilds a table by dropping it, and with them on that
    DROP deletes every row referring to the table (ON DELETE CASCADE). An explicit BEGIN: the
    driver begins a transaction only before it writes a row, so a table created before that
    stayed even when the migration failed. Both go to the driver's connection before any
    transaction (inside one the pragma does nothing); the pragma is restored after it."""
    driver = cast(sqlite3.Connection, connection.connection.driver_connection)
    foreign_keys = driver.execute("PRAGMA foreign_keys").fetchone()[0]
    driver.execute("PRAGMA foreign_keys=OFF")
    driver.execute("BEGIN")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA foreign_keys={int(foreign_keys)}")


@contextmanager
def migration_lock(engine: Engine, key: int = MIGRATION_LOCK_KEY) -> Iterator[Connection]:
    """A transaction that one process at a time holds per database, to migrate in.

    Processes that start together (workers, the api, a CLI polling a store another process is
    creating) take turns: a lock file beside a SQLite database, a transaction-scoped advisory
    lock ``key`` on PostgreSQL. Whoever comes second finds the schema at head and changes nothing.
    On SQLite the migrations run with foreign keys off (see ``_sqlite_migration``).
    """
    database = engine.url.database
    sqlite = engine.dialect.name == "sqlite"
    sqlite_file = sqlite and database not in (None, "", ":memory:")
    with _file_lock(Path(f"{database}.migrate-lock")) if sqlite_file else nullcontext():
        with engine.connect() as connection:
            with _sqlite_migration(connection) if sqlite else nullcontext(), connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                yield connection


def alembic_config(migrations: Path, connection: Connection) -> Config:
    """An Alembic configuration for the ``migrations`` folder that runs on ``connection``
    (its env.py picks the connection up), without an alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    return config


def run_env(metadata: MetaData, **options: Any) -> None:
    """The body of an Alembic ``env.py``: migrate on the connection ``upgrade`` handed over, or on
    ``sqlalchemy.url`` when run from the alembic command line. ``options`` go to
    ``context.configure`` (a store's own version table, which tables it sees)."""
    from alembic import context
    from sqlalchemy import engine_from_config, pool

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite", **options)
        with context.begin_transaction():
            context.run_migrations()

    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as fresh:
        run(fresh)


def upgrade(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (idempotent, safe to call at start-up by
    many processes at once: see ``migration_lock``)."""
    from alembic import command

    with migration_lock(engine) as connection:
        command.upgrade(alembic_config(MIGRATIONS, connection), "head")


class Store:
    """One results database. ``Store(url)`` migrates it to the current schema."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
