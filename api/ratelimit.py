"""Submissions per principal per minute: a sliding window kept in Redis (the broker), so every
API process counts against the same limit; while Redis is unreachable each process counts on
its own."""

from __future__ import annotations

from services.ratelimit import SlidingWindow


class SubmissionLimiter(SlidingWindow):
    """At most ``per_minute`` admitted submissions per key in any ``window_s`` seconds (0: no limit)."""

    def __init__(self, per_minute: int, redis_url: str | None, *, window_s: float = 60.0,
                 retry_redis_after_s: float = 5.0):
        super().__init__(window_s, requests=per_minute if per_minute > 0 else None, key_prefix="lookups:submissions",
                         redis_url=redis_url, socket_timeout_s=0.5, fall_back_for_s=retry_redis_after_s)
        self.per_minute = per_minute
