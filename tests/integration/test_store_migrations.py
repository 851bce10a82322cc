"""Processes that open a fresh results store at the same moment (workers starting together, a
CLI polling a store that another process is creating) must all succeed: migrations take turns."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from tests.integration.conftest import REPO

OPEN_STORE_ON_SIGNAL = """
import sys, time
from pathlib import Path
from services.store import Store  # import first, so the processes race only on the migration
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
Store(sys.argv[1]).dispose()
"""


def open_concurrently(url: str, go, processes: int = 6) -> list[subprocess.CompletedProcess]:
    started = [subprocess.Popen([sys.executable, "-c", OPEN_STORE_ON_SIGNAL, url, str(go)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    import time

    time.sleep(3)  # every process has imported and is waiting
    go.touch()
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in started]


def assert_all_migrated(url: str, done: list[subprocess.CompletedProcess]) -> None:
    from services.store import Store

    failures = [d.stderr[-1500:] for d in done if d.returncode != 0]
    assert not failures, failures[0]
    store = Store(url, migrate=False)
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
    store.dispose()


def test_concurrent_first_opens_of_a_sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert_all_migrated(url, open_concurrently(url, tmp_path / "go"))


@pytest.fixture
def fresh_postgres_url():
    psycopg = pytest.importorskip("psycopg")
    name = f"lookups_migrations_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                                autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({error})")
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def test_concurrent_first_opens_of_a_postgres_store(fresh_postgres_url, tmp_path):
    assert_all_migrated(fresh_postgres_url, open_concurrently(fresh_postgres_url, tmp_path / "go"))
