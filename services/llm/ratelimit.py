"""Requests and tokens per minute for one backend and model, as providers count them.

A sliding window: a request is admitted when, counting it, the last ``window_s`` seconds hold at
most ``rpm`` requests and ``tpm`` tokens (the prompt's estimate plus ``max_tokens``, as OpenAI
counts them); otherwise the caller sleeps until enough of the window has passed. Processes that
share a Redis (the workers, through the broker) count in one window there, on Redis's clock, with
one Lua script per admission; a process without one (``lookups run``) counts in memory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from typing import Protocol, runtime_checkable

from lookups import InvalidInputError
from services.settings import RateLimit, Settings

# KEYS[1]: the window's log, a sorted set of "ID:TOKENS" scored by millisecond time.
# ARGV: window ms, rpm (0: none), tpm (0: none), this request's tokens, a unique id.
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


@runtime_checkable
class RateLimiter(Protocol):
    def acquire(self, tokens: int) -> None:
        """Return once a request of ``tokens`` fits the window (sleeping until it does)."""


class _Window:
    def __init__(self, limit: RateLimit, window_s: float, name: str):
        self.limit, self.window_s, self.name = limit, window_s, name

    def acquire(self, tokens: int) -> None:
        if self.limit.tpm is not None and tokens > self.limit.tpm:
            raise InvalidInputError(f"{self.name}: a request of up to {tokens} tokens can never fit its limit "
                                    f"of {self.limit.tpm} tokens per {self.window_s:g} s")
        while (wait := self._admit(tokens)) > 0:
            time.sleep(wait)

    def _admit(self, tokens: int) -> float:
        """0.0 if admitted now (and counted), else the seconds to wait before trying again."""
        raise NotImplementedError


class LocalWindow(_Window):
    """The window of the requests of this process."""

    def __init__(self, limit: RateLimit, window_s: float, name: str):
        super().__init__(limit, window_s, name)
        self._log: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def _admit(self, tokens: int) -> float:
        now = time.monotonic()
        with self._lock:
            while self._log and self._log[0][0] <= now - self.window_s:
                self._log.popleft()
            count, used = len(self._log), sum(n for _, n in self._log)
            if self._fits(count, used + tokens):
                self._log.append((now, tokens))
                return 0.0
            for at, n in self._log:  # oldest first: the wait until enough of the log has expired
                count, used = count - 1, used - n
                if self._fits(count, used + tokens):
                    return max(at + self.window_s - now, 0.001)
            return self.window_s

    def _fits(self, count: int, used: int) -> bool:
        """Whether one more request fits beside ``count`` others, ``used`` tokens counting it."""
        return ((self.limit.rpm is None or count < self.limit.rpm)
                and (self.limit.tpm is None or used <= self.limit.tpm))


class RedisWindow(_Window):
    """The window of every process that counts in the same Redis."""

    def __init__(self, limit: RateLimit, window_s: float, name: str, redis_url: str):
        import redis

        super().__init__(limit, window_s, name)
        self._script = redis.Redis.from_url(redis_url, socket_timeout=5).register_script(SLIDING_WINDOW)

    def _admit(self, tokens: int) -> float:
        wait_ms = self._script(keys=[f"lookups:llm-rate:{self.name}"],
                               args=[int(self.window_s * 1000), self.limit.rpm or 0, self.limit.tpm or 0,
                                     tokens, uuid.uuid4().hex])
        return int(wait_ms) / 1000


_limiters: dict[tuple, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(settings: Settings, backend: str, model: str, redis_url: str | None) -> RateLimiter | None:
    """The process's one limiter for this backend and model (shared by every client of it), or
    None when the settings give the model no limit. ``redis_url``: count across processes there."""
    limit = settings.llm_rate_limits.get(model)
    if limit is None or (limit.rpm is None and limit.tpm is None):
        return None
    key = (backend, model, redis_url, limit.rpm, limit.tpm, settings.llm_rate_window_s)
    with _limiters_lock:
        if key not in _limiters:
            name = f"{backend}:{model}"
            _limiters[key] = (RedisWindow(limit, settings.llm_rate_window_s, name, redis_url) if redis_url
                              else LocalWindow(limit, settings.llm_rate_window_s, name))
        return _limiters[key]
