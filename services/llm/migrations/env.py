"""Alembic environment of the LLM cache (see ``services.store.db.run_env``).

Its version table is ``llm_alembic_version`` and it sees only its own tables, so the cache can
live in the results store's database without either store's migrations touching the other's.
"""

from services.llm.store import VERSION_TABLE, Base
from services.store.db import run_env


def include_name(name, type_, parent_names) -> bool:
    return type_ != "table" or name in Base.metadata.tables


run_env(Base.metadata, version_table=VERSION_TABLE, include_name=include_name)
