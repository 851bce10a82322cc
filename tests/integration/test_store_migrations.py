"""Processes that open a fresh results store at the same moment (workers starting together, a
CLI polling a store that another process is creating) must all succeed: migrations take turns.
A store with results of an older schema upgrades without losing them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import text

from tests.integration.conftest import REPO


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from services.store.db import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()

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
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    store.dispose()


def test_concurrent_first_opens_of_a_sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert_all_migrated(url, open_concurrently(url, tmp_path / "go"))


def test_concurrent_first_opens_of_a_postgres_store(fresh_postgres_url, tmp_path):
    assert_all_migrated(fresh_postgres_url, open_concurrently(fresh_postgres_url, tmp_path / "go"))


def migrate_to(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from services.store.db import MIGRATIONS, make_engine

    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_scores_of_a_0002_store_become_zero_shot_and_other_scorers_can_join(any_store_url):
    """0003 adds a scorer to classifications and scores: old rows read as zero-shot, and the
    uniqueness that keeps results exactly-once now holds per (head, scorer, control)."""
    from sqlalchemy.exc import IntegrityError

    from services.store import Store

    migrate_to(any_store_url, "0002")
    old = Store(any_store_url, migrate=False)
    with old.engine.begin() as connection:
        connection.execute(text("INSERT INTO campaigns (id, name, status, config, provenance, created_at, "
                                "updated_at) VALUES ('c', 'n', 'completed', '{}', '{}', '2026-01-01', '2026-01-01')"))
        connection.execute(text("INSERT INTO heads (id, campaign_id, layer, neuron, head_layer, head, "
                                "active_fraction) VALUES (1, 'c', 3, 5, 1, 2, 0.5)"))
        connection.execute(text("INSERT INTO scores (campaign_id, head_id, control, score, payload) "
                                "VALUES ('c', 1, false, 0.75, '{}')"))
    old.dispose()

    store = Store(any_store_url)  # upgrades to head
    insert = text("INSERT INTO scores (campaign_id, head_id, scorer, control, score, payload) "
                  "VALUES ('c', 1, :scorer, false, 0.5, '{}')")
    with store.engine.begin() as connection:
        rows = connection.execute(text("SELECT scorer, score FROM scores")).all()
        connection.execute(insert, {"scorer": "detection"})
    assert [tuple(r) for r in rows] == [("zero-shot", 0.75)]
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert, {"scorer": "detection"})
    store.dispose()


def test_campaigns_and_jobs_of_a_0004_store_have_no_owner_and_only_admins_see_them(any_store_url):
    """0005 adds an owner to campaigns and jobs: rows stored before it keep NULL, which the
    API shows to admin principals only."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from services.settings import Settings
    from services.store import Store

    migrate_to(any_store_url, "0004")
    old = Store(any_store_url, migrate=False)
    with old.engine.begin() as connection:
        connection.execute(text("INSERT INTO campaigns (id, name, status, config, provenance, created_at, "
                                "updated_at) VALUES ('c', 'n', 'completed', '{\"corpus\": \"hf:a/b\"}', '{}', "
                                "'2026-01-01', '2026-01-01')"))
        connection.execute(text("INSERT INTO jobs (id, kind, status, request, created_at, updated_at) "
                                "VALUES ('j', 'neurons', 'done', '{}', '2026-01-01', '2026-01-01')"))
    old.dispose()

    store = Store(any_store_url)  # upgrades to head
    with store.engine.begin() as connection:
        assert connection.execute(text("SELECT owner FROM campaigns")).all() == [(None,)]
        assert connection.execute(text("SELECT owner FROM jobs")).all() == [(None,)]
    settings = Settings(environment="production", api_principals={"alice": "tok-a", "root": "tok-r"},
                        api_admins=["root"], api_orchestrate=False, results_url=any_store_url)
    with TestClient(create_app(settings, store)) as client:
        for token, count, status in (("tok-a", 0, 404), ("tok-r", 1, 200)):
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/v1/campaigns", headers=headers).json()["count"] == count
            assert client.get("/v1/jobs/j", headers=headers).status_code == status
    store.dispose()


def test_a_0005_store_takes_completed_with_failures_and_keeps_its_rows(any_store_url):
    """0006 widens campaigns.status for 'completed_with_failures' (23 characters; PostgreSQL
    enforced 16). Nothing that references a campaign is lost on the way: on SQLite a table
    rebuild would cascade-delete it, so there the migration changes nothing."""
    from services.store import Store

    migrate_to(any_store_url, "0005")
    old = Store(any_store_url, migrate=False)
    with old.engine.begin() as connection:
        connection.execute(text("INSERT INTO campaigns (id, name, status, config, provenance, created_at, "
                                "updated_at) VALUES ('c', 'n', 'completed', '{}', '{}', '2026-01-01', '2026-01-01')"))
        connection.execute(text("INSERT INTO heads (id, campaign_id, layer, neuron, head_layer, head, "
                                "active_fraction) VALUES (1, 'c', 3, 5, 1, 2, 0.5)"))
        connection.execute(text("INSERT INTO work_items (campaign_id, stage, key, queue, status, attempts) "
                                "VALUES ('c', 'explain', '3:5/1.2', 'llm', 'failed', 1)"))
    old.dispose()

    store = Store(any_store_url)  # upgrades to head
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE campaigns SET status = 'completed_with_failures'"))
        assert connection.execute(text("SELECT status FROM campaigns")).all() == [("completed_with_failures",)]
        assert connection.execute(text("SELECT count(*) FROM heads")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM work_items")).scalar() == 1
    store.dispose()
