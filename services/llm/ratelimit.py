"""Requests and tokens per minute for one backend and model, as providers count them.

A sliding window: a request is admitted when, counting it, the last ``window_s`` seconds hold at
most ``rpm`` requests and ``tpm`` tokens (the prompt's estimate plus ``max_tokens``, as OpenAI
counts them); otherwise the caller sleeps until enough of the window has passed. Processes that
share a Redis (the workers, through the broker) count in one window there, on Redis's clock, with
one Lua script per admission (``services/ratelimit.py``, which the API's submission limit uses too);
a process without one (``lookups run``) counts in memory.
"""

from __future__ import annotations

import threading
import time

from lookups import InvalidInputError
from services.ratelimit import SlidingWindow
from services.settings import RateLimit, Settings


class RateLimiter:
    """The window of one backend and model: in ``redis_url``, shared by every process counting
    there, else in this process."""

    def __init__(self, limit: RateLimit, window_s: float, name: str, redis_url: str | None = None):
        self.limit, self.window_s, self.name = limit, window_s, name
        self._window = SlidingWindow(window_s, requests=limit.rpm, tokens=limit.tpm,
                                     key_prefix="lookups:llm-rate", redis_url=redis_url)

    def acquire(self, tokens: int) -> None:
        """Return once a request of ``tokens`` fits the window (sleeping until it does)."""
        if self.limit.tpm is not None and tokens > self.limit.tpm:
            raise InvalidInputError(f"{self.name}: a request of up to {tokens} tokens can never fit its limit "
                                    f"of {self.limit.tpm} tokens per {self.window_s:g} s")
        while (wait := self._window.admit(self.name, tokens)) > 0:
            time.sleep(wait)


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
            _limiters[key] = RateLimiter(limit, settings.llm_rate_window_s, name, redis_url)
        return _limiters[key]
