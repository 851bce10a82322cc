"""Requests and tokens per minute counted in this process (``lookups run``): a sliding window
that makes callers wait, never refuses a request that fits, and names a request that never can."""

from __future__ import annotations

import threading
import time

import pytest

from lookups import InvalidInputError
from services.llm.ratelimit import RateLimiter, limiter_for
from services.settings import RateLimit

WINDOW = 1.0
LATE_S = 0.3  # a thread may note its admission this late on a busy machine


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_requests_per_window_hold_across_threads_and_later_ones_wait():
    limiter = RateLimiter(RateLimit(rpm=3), WINDOW, "test:model")
    admitted: list[float] = []

    def one() -> None:
        limiter.acquire(10)
        admitted.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) == 7
    assert most_in_any_window(admitted, WINDOW - LATE_S) <= 3
    assert max(admitted) - started >= 2 * WINDOW  # the 7th waited for two windows to pass


def test_tokens_per_window_count_each_request_by_its_size():
    limiter = RateLimiter(RateLimit(tpm=100), WINDOW, "test:model")
    started = time.monotonic()
    limiter.acquire(60)
    limiter.acquire(40)  # 100 in all: fits
    assert time.monotonic() - started < WINDOW
    limiter.acquire(1)  # waits until the first two leave the window
    assert time.monotonic() - started >= WINDOW


def test_a_request_larger_than_the_token_limit_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="up to 101 tokens can never fit.*100 tokens per 1 s"):
        RateLimiter(RateLimit(tpm=100), WINDOW, "test:model").acquire(101)


def test_one_limiter_per_model_and_none_for_unlisted_models(monkeypatch):
    from services.settings import get_settings

    monkeypatch.setenv("LOOKUPS_LLM_RATE_LIMITS", '{"limited-model": {"rpm": 5}}')
    settings = get_settings()
    first = limiter_for(settings, "openai", "limited-model", None)
    assert first is not None and first is limiter_for(settings, "openai", "limited-model", None)
    assert limiter_for(settings, "anthropic", "limited-model", None) is not first
    assert limiter_for(settings, "openai", "other-model", None) is None


def test_bad_limits_are_refused_naming_the_setting(monkeypatch):
    from pydantic import ValidationError

    from services.settings import get_settings

    monkeypatch.setenv("LOOKUPS_LLM_RATE_LIMITS", '{"m": {"rpm": 0}}')
    with pytest.raises(ValidationError, match="llm_rate_limits"):
        get_settings()


def test_the_client_waits_for_the_limit_between_calls(settings, fake_server, monkeypatch):
    """Through the one call path: three uncached calls with two allowed per window."""
    from lookups import LLMRequest
    from services.llm.client import LLMClient
    from services.llm.registry import create_backend
    from services.settings import get_settings

    monkeypatch.setenv("LOOKUPS_LLM_RATE_LIMITS", '{"fake-gpt": {"rpm": 2}}')
    monkeypatch.setenv("LOOKUPS_LLM_RATE_WINDOW_S", str(WINDOW))
    backend = create_backend("openai:fake-gpt", {"base_url": fake_server.url, "timeout": 2})
    client = LLMClient(backend, settings=get_settings())
    started = time.monotonic()
    client.map([LLMRequest(prompt=f"prompt {i}", max_tokens=1) for i in range(3)])

    assert len(fake_server.requests) == 3
    assert time.monotonic() - started >= WINDOW
