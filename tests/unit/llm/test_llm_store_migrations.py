"""The LLM cache's schema is Alembic's: processes that open a fresh cache at the same moment (an
llm worker's pool starting) take turns creating it, instead of one failing with "table llm_cache
already exists"; a cache made by the old ``create_all`` code is adopted with its rows."""

from __future__ import annotations

import multiprocessing
from datetime import datetime

import pytest
from sqlalchemy import MetaData, Table, create_engine, inspect, text

from services.llm.store import VERSION_TABLE, Base, CachedResponse, LedgerRow, LLMStore

PROCESSES = 8
LATER_COLUMNS = {"cache_read_tokens", "cache_write_tokens", "cut"}  # the ledger's by 0003, the cache's by 0004


def first_tables() -> MetaData:
    """What ``create_all`` made before the migrations: llm_cache and llm_calls, without the
    columns added since (and without batch mode's tables)."""
    metadata = MetaData()
    for table in (CachedResponse.__table__, LedgerRow.__table__):
        Table(table.name, metadata, *(column._copy() for column in table.columns if column.name not in LATER_COLUMNS))
    return metadata


def open_at_the_same_moment(url: str, barrier, errors) -> None:
    """One pool process: every import done, wait for the others, then open the cache."""
    try:
        barrier.wait(timeout=60)
        LLMStore(url).engine.dispose()
    except BaseException as error:  # reported to the test, not lost in a child's stderr
        errors.put(f"{type(error).__name__}: {error}")
        raise


def head() -> str:
    from alembic.script import ScriptDirectory

    from services.llm.store import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def schema(url: str) -> dict:
    """Tables, columns (name, type, nullable, primary key) and indexes, as the database has them."""
    engine = create_engine(url)
    found = inspect(engine)
    described = {
        table: ([(c["name"], str(c["type"]), c["nullable"], c["primary_key"]) for c in found.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)))
        for table in found.get_table_names() if table != VERSION_TABLE}
    engine.dispose()
    return described


def versions(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    engine.dispose()
    return found


@pytest.mark.slow  # 8 spawned processes, each importing the LLM store: ~15 s
def test_processes_opening_a_fresh_cache_at_once_all_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'llm.sqlite'}"
    spawn = multiprocessing.get_context("spawn")
    barrier, errors = spawn.Barrier(PROCESSES), spawn.Queue()
    started = [spawn.Process(target=open_at_the_same_moment, args=(url, barrier, errors))
               for _ in range(PROCESSES)]
    for process in started:
        process.start()
    for process in started:
        process.join(timeout=120)

    failures = [errors.get(timeout=5) for process in started if process.exitcode != 0]
    assert not failures, failures
    assert versions(url) == [head()]
    engine = create_engine(url)
    with engine.connect() as connection:
        tables = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "ORDER BY name")).scalars().all()
    engine.dispose()
    assert tables == sorted(["llm_cache", "llm_calls", "llm_batches", "llm_batch_requests", VERSION_TABLE])


def test_the_migrations_make_the_schema_create_all_made(tmp_path):
    old, new = f"sqlite:///{tmp_path / 'old.sqlite'}", f"sqlite:///{tmp_path / 'new.sqlite'}"
    engine = create_engine(old)
    Base.metadata.create_all(engine)
    engine.dispose()
    LLMStore(new).engine.dispose()
    assert schema(new) == schema(old)
    assert set(schema(new)) == {"llm_cache", "llm_calls", "llm_batches", "llm_batch_requests"}


def test_a_cache_made_by_create_all_is_adopted_with_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'llm.sqlite'}"
    engine = create_engine(url)
    first_tables().create_all(engine)  # what LLMStore did before its migrations
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO llm_cache (key, text, input_tokens, output_tokens, "
                                "top_logprobs, created_at) VALUES ('k', 'cached answer', 3, 2, NULL, :at)"),
                           {"at": datetime(2026, 1, 1)})
    engine.dispose()

    store = LLMStore(url)
    cached = store.get("k")
    assert (cached.text, cached.input_tokens, cached.output_tokens, cached.top_logprobs) == (
        "cached answer", 3, 2, None)
    store.put("k2", cached.model_copy(update={"text": "new"}))
    assert store.get("k2").text == "new"
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM llm_cache")).scalar() == 2
    store.engine.dispose()
    assert versions(url) == [head()]
    LLMStore(url).engine.dispose()  # opening again changes nothing
    assert versions(url) == [head()]


def test_the_cache_and_the_results_store_can_share_a_database(tmp_path):
    from services.store import Store

    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    LLMStore(url).engine.dispose()
    Store(url).dispose()
    LLMStore(url).engine.dispose()
    assert versions(url) == [head()]
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM llm_cache")).scalar() == 0
    engine.dispose()


def test_a_writer_holding_the_cache_does_not_block_its_readers(tmp_path):
    """Write-ahead log: LLM items read the cache while another process holds a write transaction
    on it (in rollback-journal mode the read waited out the busy timeout, then failed)."""
    import sqlite3

    from lookups import Completion

    url = f"sqlite:///{tmp_path / 'llm.sqlite'}"
    store = LLMStore(url)
    store.put("present", Completion(text="Yes", input_tokens=3, output_tokens=1))
    holder = sqlite3.connect(tmp_path / "llm.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM llm_cache")  # not committed: readers still see the row
    try:
        assert store.get("present").text == "Yes"
    finally:
        holder.rollback()
        holder.close()
        store.engine.dispose()
