"""Submissions per principal per minute: a sliding window kept in Redis (the broker), so every
API process counts against the same limit; while Redis is unreachable each process counts on
its own."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque

log = logging.getLogger(__name__)

# KEYS[1]: the principal's log of accepted submissions (a sorted set of millisecond times, on
# Redis's clock so API hosts need not agree). ARGV: window ms, limit, a unique member.
# Returns 0 when this submission is admitted (and logged), else the ms until one is.
SLIDING_WINDOW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], t, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - t)
"""


class SubmissionLimiter:
    """At most ``per_minute`` admitted submissions per key in any ``window_s`` seconds (0: no limit)."""

    def __init__(self, per_minute: int, redis_url: str | None, *, window_s: float = 60.0,
                 retry_redis_after_s: float = 5.0):
        self.per_minute, self.redis_url, self.window_s = per_minute, redis_url, window_s
        self._retry_redis_after_s = retry_redis_after_s
        self._redis_down_until = 0.0
        self._client = None
        self._script = None
        self._local: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> float:
        """Count a submission by ``key``: 0.0 if admitted, else the seconds until one would be."""
        if self.per_minute <= 0:
            return 0.0
        if self.redis_url and time.monotonic() >= self._redis_down_until:
            try:
                return self._admit_redis(key)
            except Exception as error:  # redis.RedisError, OSError: count here until it is back
                log.warning("rate limit: Redis unreachable (%s); counting in this process", type(error).__name__)
                self._redis_down_until = time.monotonic() + self._retry_redis_after_s
        return self._admit_local(key)

    def _admit_redis(self, key: str) -> float:
        if self._script is None:
            import redis

            self._client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
            self._script = self._client.register_script(SLIDING_WINDOW)
        wait_ms = self._script(keys=[f"lookups:submissions:{key}"],
                               args=[int(self.window_s * 1000), self.per_minute, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    def _admit_local(self, key: str) -> float:
        now = time.monotonic()
        with self._lock:
            times = self._local.setdefault(key, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < self.per_minute:
                times.append(now)
                return 0.0
            return max(times[0] + self.window_s - now, 0.001)
