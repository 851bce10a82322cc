"""Both stores (results, LLM cache) open SQLite files the same way: WAL, a 30 s busy timeout.

Workers share the files, so a writer finding another holding the write lock must wait its turn;
sqlite3's default wait is 5 s, which a long transaction elsewhere outlasts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from lookups import Completion
from services.llm.store import LLMStore
from services.store.db import Store

HELD_S = 6.0  # longer than sqlite3's default 5 s busy wait


def _stores(tmp_path: Path) -> tuple[Store, LLMStore]:
    return Store(f"sqlite:///{tmp_path / 'results.sqlite'}"), LLMStore(f"sqlite:///{tmp_path / 'llm.sqlite'}")


def test_both_stores_connect_with_wal_and_a_30_s_busy_timeout(tmp_path):
    for store in _stores(tmp_path):
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        store.engine.dispose()


def _hold_write_lock(path: Path, seconds: float) -> None:
    """Another process's long write transaction: the file's write lock, taken now, released later."""
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(seconds, lambda: (blocker.commit(), blocker.close())).start()


def test_a_writer_waits_out_a_lock_held_longer_than_sqlites_default_wait(tmp_path):
    results, llm = _stores(tmp_path)
    _hold_write_lock(tmp_path / "results.sqlite", HELD_S)
    _hold_write_lock(tmp_path / "llm.sqlite", HELD_S)
    started = time.monotonic()

    def write_results() -> None:
        with results.session() as session:
            session.execute(text("CREATE TABLE waited (x INTEGER)"))

    def write_llm() -> None:
        llm.put("k" * 64, Completion(text="an answer", input_tokens=3, output_tokens=2))

    with ThreadPoolExecutor(2) as pool:
        for write in [pool.submit(write_results), pool.submit(write_llm)]:
            write.result()  # raises "database is locked" where a store gives up before the lock is free
    assert time.monotonic() - started >= HELD_S - 0.5  # both did wait for the lock
    assert llm.get("k" * 64) is not None
    with results.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM waited")).scalar() == 0
    results.dispose()
    llm.engine.dispose()
