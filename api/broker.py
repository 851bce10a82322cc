"""A quick Redis ping, so a request never waits on Celery's publish retries when the broker is
down (the orchestrator sends what is stored once it is back)."""

from __future__ import annotations


def broker_reachable(url: str, timeout_s: float = 1.0) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False
