"""Alembic environment of the LLM cache: runs on the connection handed over by
services.llm.store.upgrade, or on ``sqlalchemy.url`` when invoked from the alembic command line.

Its version table is ``llm_alembic_version`` and it sees only its own tables, so the cache can
live in the results store's database without either store's migrations touching the other's.
"""

from alembic import context
from sqlalchemy import engine_from_config, pool

from services.llm.store import VERSION_TABLE, Base

config = context.config
target_metadata = Base.metadata


def include_name(name, type_, parent_names) -> bool:
    return type_ != "table" or name in target_metadata.tables


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      version_table=VERSION_TABLE, include_name=include_name,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as fresh:
        run(fresh)
