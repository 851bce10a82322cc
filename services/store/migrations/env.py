"""Alembic environment of the results store (see ``services.store.db.run_env``)."""

from services.store.db import run_env
from services.store.models import Base

run_env(Base.metadata)
