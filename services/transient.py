"""Which errors are worth trying again: a store or broker briefly away, a race between processes
starting together, a backend that stayed unavailable. Work items and single jobs that fail with
one are retried a few times with backoff (``Settings.item_max_attempts``) before they fail;
any other error (a ``LookupsError`` a user can act on, a bug) fails them at once.
"""

from __future__ import annotations

import random
import re

from lookups import BackendUnavailableError, LookupsError

# Database errors that a second try usually does not meet: SQLite's lock timeout, two processes
# creating the same table at once, PostgreSQL's deadlock and serialization failures, and a
# server that is restarting or unreachable.
_TRANSIENT_DATABASE = re.compile(
    r"database is locked|database table is locked|already exists|deadlock|could not serialize|"
    r"server closed the connection|connection refused|could not connect|terminating connection|"
    r"connection reset|connection timed out|the database system is (starting up|shutting down)|"
    r"lock timeout|lock wait timeout|ssl syscall",
    re.IGNORECASE)


def is_transient(error: BaseException | None) -> bool:
    """True for an error that may not happen again: see the module docstring. Follows explicit
    causes (``raise ... from``), but a ``LookupsError`` is decided by its own type."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, LookupsError):
            return isinstance(error, BackendUnavailableError)
        if _transient(error):
            return True
        error = error.__cause__
    return False


def _transient(error: BaseException) -> bool:
    from sqlalchemy import exc

    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, exc.OperationalError) and bool(_TRANSIENT_DATABASE.search(str(error.orig)))
    if isinstance(error, exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, ConnectionError | TimeoutError):  # refused, reset, broken pipe, socket timeout
        return True
    if _broker_error(error):
        return True
    # a driver's own error (sqlite3, psycopg), not wrapped by SQLAlchemy
    return type(error).__name__ == "OperationalError" and bool(_TRANSIENT_DATABASE.search(str(error)))


def _broker_error(error: BaseException) -> bool:
    """Redis or kombu could not reach the broker (their errors are not the builtin ones)."""
    try:
        import kombu.exceptions
        import redis.exceptions
    except ImportError:  # pragma: no cover - both come with celery, a dependency
        return False
    return isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
                      | kombu.exceptions.OperationalError)


def retry_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Seconds to wait before try ``attempt + 1``: doubling from ``initial_s``, at most
    ``max_s``, with jitter so processes that failed together do not retry together."""
    return min(max_s, initial_s * 2 ** max(attempt - 1, 0)) * random.uniform(0.5, 1.0)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def failure_message(error: BaseException, *, retry: bool) -> str | None:
    """What a work item or a single job that raised ``error`` records as its failure (at most
    4000 characters), or None when it is to be handed back and tried again: a transient error
    while tries are left (``retry``)."""
    transient = is_transient(error)
    if transient and retry:
        return None
    note = " (a transient error, still there at the last try)" if transient else ""
    return (describe(error) + note)[:4000]
