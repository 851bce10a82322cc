"""A sliding-window rate limit per key: at most ``requests`` admissions and ``tokens`` units of
weight in any ``window_s`` seconds. The API counts submissions per principal with it, the LLM
client requests and tokens per model.

Processes that share a Redis count in one window there, on Redis's clock (hosts need not agree),
with one Lua script per admission; without one a process counts in memory. A window may fall
back to counting in memory while its Redis is unreachable (the API: a submission is not refused
for want of a counter) or let the error through (the LLM client: its caller retries).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

log = logging.getLogger(__name__)

# KEYS[1]: the window's log, a sorted set of "ID:TOKENS" scored by millisecond time.
# ARGV: window ms, requests (0: none), tokens (0: none), this admission's tokens, a unique id.
# Returns 0 when admitted (and logged), else the ms until it would be.
SLIDING_WINDOW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window, rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function weight(member) return tonumber(string.match(member, ':(%d+)$')) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - window)
local log = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count, used = #log / 2, 0
for i = 1, #log, 2 do used = used + weight(log[i]) end
local function fits() return (rpm == 0 or count < rpm) and (tpm == 0 or used + tokens <= tpm) end
if fits() then
  redis.call('ZADD', KEYS[1], t, ARGV[5] .. ':' .. tokens)
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
for i = 1, #log, 2 do  -- oldest first: the wait until enough of the log has expired
  count, used = count - 1, used - weight(log[i])
  if fits() then return math.max(1, tonumber(log[i + 1]) + window - t) end
end
return window
"""


class SlidingWindow:
    """``requests``/``tokens``: the limits per key and window (None: not limited).
    ``redis_url``: count there under ``key_prefix``, else in this process.
    ``fall_back_for_s``: when Redis fails, count in this process for this long and try Redis
    again after (None: the Redis error is raised)."""

    def __init__(self, window_s: float, *, requests: int | None = None, tokens: int | None = None,
                 key_prefix: str, redis_url: str | None = None,
                 socket_timeout_s: float = 5.0, fall_back_for_s: float | None = None):
        self.window_s, self.requests, self.tokens = window_s, requests, tokens
        self.redis_url, self.key_prefix = redis_url, key_prefix
        self._socket_timeout_s, self._fall_back_for_s = socket_timeout_s, fall_back_for_s
        self._redis_down_until = 0.0
        self._script: Any = None
        self._local: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, tokens: int = 0) -> float:
        """Count an admission of ``tokens`` by ``key``: 0.0 if admitted, else the seconds until one would be."""
        if self.requests is None and self.tokens is None:
            return 0.0
        if self.redis_url and time.monotonic() >= self._redis_down_until:
            if self._fall_back_for_s is None:
                return self._admit_redis(self.redis_url, key, tokens)
            try:
                return self._admit_redis(self.redis_url, key, tokens)
            except Exception as error:  # redis.RedisError, OSError: count here until it is back
                log.warning("rate limit: Redis unreachable (%s); counting in this process", type(error).__name__)
                self._redis_down_until = time.monotonic() + self._fall_back_for_s
        return self._admit_local(key, tokens)

    def _admit_redis(self, redis_url: str, key: str, tokens: int) -> float:
        if self._script is None:
            import redis

            client = redis.Redis.from_url(redis_url, socket_connect_timeout=self._socket_timeout_s,
                                          socket_timeout=self._socket_timeout_s)
            self._script = client.register_script(SLIDING_WINDOW)
        wait_ms = self._script(keys=[f"{self.key_prefix}:{key}"],
                               args=[int(self.window_s * 1000), self.requests or 0, self.tokens or 0,
                                     tokens, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    def _admit_local(self, key: str, tokens: int) -> float:
        now = time.monotonic()
        with self._lock:
            entries = self._local.setdefault(key, deque())
            while entries and entries[0][0] <= now - self.window_s:
                entries.popleft()
            count, used = len(entries), sum(n for _, n in entries)
            if self._fits(count, used + tokens):
                entries.append((now, tokens))
                return 0.0
            for at, n in entries:  # oldest first: the wait until enough of the log has expired
                count, used = count - 1, used - n
                if self._fits(count, used + tokens):
                    return max(at + self.window_s - now, 0.001)
            return self.window_s

    def _fits(self, count: int, used: int) -> bool:
        """Whether one more admission fits beside ``count`` others, ``used`` tokens counting it."""
        return (self.requests is None or count < self.requests) and (self.tokens is None or used <= self.tokens)
