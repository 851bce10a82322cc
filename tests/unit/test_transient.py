"""Which errors a work item or job is tried again on (services.transient): real exception objects
of the libraries that raise them, including the one the crash run found."""

from __future__ import annotations

import sqlite3

import kombu.exceptions
import pytest
import redis.exceptions
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from lookups import BackendError, BackendUnavailableError, BudgetExceededError, InvalidInputError
from services.transient import failure_message, is_transient, retry_delay


def database_error(tmp_path, sql: str) -> Exception:
    """The error SQLAlchemy raises for ``sql`` on a real SQLite file."""
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY)"))
    try:
        with engine.begin() as connection:
            connection.execute(text(sql))
    except Exception as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} raised nothing")


def test_the_crash_runs_race_is_transient(tmp_path):
    """Two pool processes created the cache tables at once: the loser's error."""
    error = database_error(tmp_path, "CREATE TABLE llm_cache (key TEXT)")
    assert isinstance(error, OperationalError) and "already exists" in str(error)
    assert is_transient(error)


def test_a_locked_database_is_transient(tmp_path):
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    with pytest.raises(OperationalError) as raised:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
    holder.rollback()
    holder.close()
    engine.dispose()
    assert "database is locked" in str(raised.value) and is_transient(raised.value)


@pytest.mark.parametrize("sql", ["SELECT * FROM no_such_table", "INSERT INTO llm_cache VALUES ('a'), ('a')",
                                 "THIS IS NOT SQL"])
def test_a_bug_in_sql_is_not_transient(tmp_path, sql):
    error = database_error(tmp_path, sql)
    assert isinstance(error, DBAPIError) and not is_transient(error)


def test_a_lost_connection_is_transient():
    lost = DBAPIError("SELECT 1", None, Exception("server closed the connection unexpectedly"),
                      connection_invalidated=True)
    assert is_transient(lost)
    assert not is_transient(IntegrityError("INSERT", None, Exception("UNIQUE constraint failed")))
    assert not is_transient(ProgrammingError("SELECT", None, Exception("syntax error")))


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(),
    TimeoutError("timed out"),
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    kombu.exceptions.OperationalError("[Errno 111] Connection refused"),
    BackendUnavailableError("openai (gpt-4o) failed after 5 attempt(s): RateLimitError"),
    sqlite3.OperationalError("database is locked"),
])
def test_transient(error):
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    BackendError("openai (gpt-4o) failed after 1 attempt(s): 400 this prompt is refused"),
    BudgetExceededError("budget cap $1.0000 reached"),
    InvalidInputError("layer 40 out of range"),
    ValueError("a bug"),
    KeyError("a bug"),
    sqlite3.OperationalError("no such table: llm_cache"),
    redis.exceptions.ResponseError("WRONGTYPE"),
])
def test_not_transient(error):
    assert not is_transient(error)


def test_an_explicit_cause_counts_but_a_lookups_error_decides_by_its_type():
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError as cause:
            raise RuntimeError("could not read the corpus") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError as cause:
            raise InvalidInputError("the corpus is unreadable") from cause
    except InvalidInputError as wrapped:
        assert not is_transient(wrapped)


def test_retry_delays_double_up_to_the_cap_with_jitter():
    delays = [retry_delay(attempt, 1.0, 5.0) for attempt in (1, 2, 3, 4, 5)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert all(2.5 <= d <= 5.0 for d in delays[3:])


def test_the_failure_an_item_or_job_records():
    """None: hand it back for another try; else its message, noting a transient error that
    outlasted its tries, cut to fit."""
    overloaded = BackendUnavailableError("still overloaded")
    assert failure_message(overloaded, retry=True) is None
    assert failure_message(overloaded, retry=False) == ("BackendUnavailableError: still overloaded"
                                                        " (a transient error, still there at the last try)")
    refused = InvalidInputError("x" * 5000)
    assert failure_message(refused, retry=True) == failure_message(refused, retry=False)
    assert failure_message(refused, retry=True) == ("InvalidInputError: " + "x" * 5000)[:4000]


def test_two_processes_caching_one_answer_at_once_is_no_error(tmp_path):
    """Found by the stack test: two llm processes sent the same prompt (a head's explanation
    and its control read alike), both missed the cache and both cached the answer; the second
    insert broke the key's uniqueness and failed its item. Here the other process's row lands
    between this one's lookup and its insert."""
    from sqlalchemy import event

    from lookups import Completion
    from services.llm.store import LLMStore

    url = f"sqlite:///{tmp_path / 'llm.sqlite'}"
    ours, theirs = LLMStore(url), LLMStore(url)
    answer = Completion(text="Yes", input_tokens=3, output_tokens=1)

    raced: list[bool] = []

    def other_process_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO llm_cache") and not raced:
            raced.append(True)
            theirs.put("k", answer.model_copy(update={"text": "theirs"}))

    event.listen(ours.engine, "before_cursor_execute", other_process_first)
    ours.put("k", answer)
    assert raced and ours.get("k").text == "theirs"
    ours.engine.dispose()
    theirs.engine.dispose()
