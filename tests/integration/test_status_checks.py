"""Migration 0009: each status column takes only its enum's values, held by a CHECK constraint,
on SQLite and on a private PostgreSQL. A 0008 store keeps its rows through the upgrade; one
holding a status outside the enums is refused with the rows named, and stays at 0008."""

from __future__ import annotations

import pytest
from alembic import command
from pydantic import BaseModel
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from services.campaigns.config import CampaignConfig
from services.jobs import create_job
from services.store import Store
from services.store.db import MIGRATIONS, alembic_config, make_engine, migration_lock
from services.store.models import Base, Campaign
from services.store.statuses import CampaignStatus, ItemStatus, JobStatus

CHECKS = {"campaigns": "ck_campaigns_status", "work_items": "ck_work_items_status", "jobs": "ck_jobs_status"}


class _Request(BaseModel):
    """A job's request (its content does not matter here)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A URL maker: a fresh database per name, SQLite files or databases of a private PostgreSQL."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database


def migrate_to(url: str, revision: str) -> None:
    engine = make_engine(url)
    with migration_lock(engine) as connection:
        command.upgrade(alembic_config(MIGRATIONS, connection), revision)
    engine.dispose()


def run(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def read(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(text(query))]
    engine.dispose()
    return rows


def campaign(campaign_id: str, status: str) -> str:
    return ("INSERT INTO campaigns (id, name, status, config, provenance, created_at, updated_at) "
            f"VALUES ('{campaign_id}', 'n', '{status}', '{{}}', '{{}}', '2026-01-01', '2026-01-01')")


def item(key: str, status: str) -> str:
    return ("INSERT INTO work_items (campaign_id, stage, key, queue, status, attempts) "
            f"VALUES ('c-running', 'explain', '{key}', 'llm', '{status}', 1)")


def job(job_id: str, status: str) -> str:
    return ("INSERT INTO jobs (id, kind, status, request, created_at, updated_at) "
            f"VALUES ('{job_id}', 'neurons', '{status}', '{{}}', '2026-01-01', '2026-01-01')")


def a_0008_store(url: str) -> None:
    """A campaign in every state, the first one's items and a head, and a job in every state."""
    migrate_to(url, "0008")
    run(url, *(campaign(f"c-{status}", status) for status in CampaignStatus),
        *(item(f"3:5/1.{n}", status) for n, status in enumerate(ItemStatus)),
        "INSERT INTO heads (id, campaign_id, layer, neuron, head_layer, head, active_fraction) "
        "VALUES (1, 'c-running', 3, 5, 1, 2, 0.5)",
        *(job(f"j-{status}", status) for status in JobStatus))


ROWS = {"campaigns": "SELECT id, status FROM campaigns ORDER BY id",
        "work_items": "SELECT id, key, status FROM work_items ORDER BY id",
        "jobs": "SELECT id, status FROM jobs ORDER BY id",
        "heads": "SELECT id, campaign_id FROM heads"}


def checks(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    found = inspect(engine)
    names = {table: sorted(check["name"] for check in found.get_check_constraints(table)) for table in CHECKS}
    engine.dispose()
    return names


def test_a_0008_store_upgrades_with_its_rows_and_gains_the_checks(database):
    url = database("results")
    a_0008_store(url)
    before = {table: read(url, query) for table, query in ROWS.items()}

    Store(url).dispose()

    assert {table: read(url, query) for table, query in ROWS.items()} == before
    assert len(before["work_items"]) == len(ItemStatus) and before["heads"] == [(1, "c-running")]
    assert checks(url) == {table: [name] for table, name in CHECKS.items()}
    # Foreign keys hold again after the migration (SQLite's were off while it rebuilt the tables).
    store = Store(url)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM campaigns WHERE id = 'c-running'"))
        assert connection.execute(text("SELECT count(*) FROM work_items")).scalar() == 0
    store.dispose()


def test_after_the_upgrade_the_database_refuses_a_status_outside_the_enums(database):
    url = database("results")
    a_0008_store(url)
    store = Store(url)
    for table, key in (("campaigns", "id = 'c-running'"), ("work_items", "status = 'done'"),
                       ("jobs", "id = 'j-done'")):
        with pytest.raises(IntegrityError, match=CHECKS[table]), store.engine.begin() as connection:
            connection.execute(text(f"UPDATE {table} SET status = 'paused' WHERE {key}"))
    # The enums are written as their values.
    with store.session() as session:
        session.add(Campaign(id="c-new", name="n", status=CampaignStatus.COMPLETED_WITH_FAILURES,
                             config=CampaignConfig(corpus="c.jsonl")))
    job_id = create_job(store, "neurons", _Request())
    assert read(url, "SELECT status FROM campaigns WHERE id = 'c-new'") == [("completed_with_failures",)]
    assert read(url, f"SELECT status FROM jobs WHERE id = '{job_id}'") == [("pending",)]
    store.dispose()


def test_a_0008_store_with_a_bad_status_fails_the_upgrade_naming_the_rows_and_stays_at_0008(database):
    url = database("results")
    a_0008_store(url)
    run(url, item("3:5/9.9", "paused"), job("j-odd", "finished"))
    before = {table: read(url, query) for table, query in ROWS.items()}
    bad_item = read(url, "SELECT id FROM work_items WHERE status = 'paused'")[0][0]

    with pytest.raises(RuntimeError) as refused:
        Store(url)

    message = str(refused.value)
    assert f"work_items row id {bad_item} has status 'paused'" in message
    assert "jobs row id 'j-odd' has status 'finished'" in message
    assert "campaigns row" not in message
    assert read(url, "SELECT version_num FROM alembic_version") == [("0008",)]
    assert {table: read(url, query) for table, query in ROWS.items()} == before
    assert checks(url) == {table: [] for table in CHECKS}

    run(url, "UPDATE work_items SET status = 'failed' WHERE status = 'paused'", "DELETE FROM jobs WHERE id = 'j-odd'")
    Store(url).dispose()  # corrected, the store upgrades
    assert checks(url) == {table: [name] for table, name in CHECKS.items()}


def test_a_sqlite_migration_that_fails_midway_leaves_nothing_behind(tmp_path):
    """The table rebuilds run in one transaction: a failure at the last table (its batch table
    name taken) rolls back the tables rebuilt before it, so the next upgrade starts clean."""
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    a_0008_store(url)
    run(url, "CREATE TABLE _alembic_tmp_jobs (id INTEGER)")

    with pytest.raises(OperationalError, match="_alembic_tmp_jobs"):
        Store(url)
    assert read(url, "SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'") == [("_alembic_tmp_jobs",)]
    assert read(url, "SELECT version_num FROM alembic_version") == [("0008",)]

    run(url, "DROP TABLE _alembic_tmp_jobs")
    Store(url).dispose()
    assert checks(url) == {table: [name] for table, name in CHECKS.items()}
    assert len(read(url, ROWS["work_items"])) == len(ItemStatus)


def test_the_migrated_checks_are_the_enums(database):
    """0009 keeps its own copy of the states; a store built from the models (the enums) has the
    same constraints, so the two cannot drift apart unnoticed."""
    migrated, modelled = database("migrated"), database("modelled")
    Store(migrated).dispose()
    engine = create_engine(modelled)
    Base.metadata.create_all(engine)
    engine.dispose()

    def described(url: str) -> dict:
        engine = create_engine(url)
        found = {table: inspect(engine).get_check_constraints(table) for table in CHECKS}
        engine.dispose()
        return found

    assert described(migrated) == described(modelled)
    assert all(len(found) == 1 for found in described(migrated).values())
