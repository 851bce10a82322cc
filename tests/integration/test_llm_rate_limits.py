"""Requests per minute shared through Redis: two processes calling the same model together stay
within one limit, as a provider counts it, and the later calls wait rather than fail."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "llm"))
from fake_openai import TEST_KEY, FakeOpenAI  # noqa: E402

from tests.integration.conftest import REPO  # noqa: E402

RPM, WINDOW_S, CALLS_EACH = 4, 3.0, 5
# A request reaches the server a little after the limiter admitted it, later on a busy machine
# (a CI run once saw 0.17 s): the windows checked below allow this much of it.
JITTER_S = 0.75

CALLER = """
import sys, time
from pathlib import Path
from lookups import LLMRequest
from services.llm.client import LLMClient
from services.llm.registry import create_backend
from services.llm.ratelimit import limiter_for
from services.settings import get_settings
settings = get_settings()
backend = create_backend("openai:limited-gpt", {"base_url": sys.argv[1]})
limiter = limiter_for(settings, backend.name, backend.model, sys.argv[2])
client = LLMClient(backend, settings=settings, limiter=limiter)
backend.chat_model(1, False)  # import the SDK now: a first call's imports take seconds on a busy machine
Path(sys.argv[5] + "-" + sys.argv[3]).touch()  # ready
while not Path(sys.argv[5]).exists():  # start together
    time.sleep(0.001)
client.map([LLMRequest(prompt=f"{sys.argv[3]} call {i}", max_tokens=1) for i in range(int(sys.argv[4]))])
"""


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_two_processes_share_one_requests_per_minute_limit(redis_server, tmp_path):
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY, "LOOKUPS_CACHE_DIR": str(tmp_path),
           "LOOKUPS_LLM_RATE_LIMITS": f'{{"limited-gpt": {{"rpm": {RPM}}}}}',
           "LOOKUPS_LLM_RATE_WINDOW_S": str(WINDOW_S)}
    arrivals: list[float] = []
    with FakeOpenAI() as server:
        server.respond = lambda prompt: arrivals.append(time.monotonic()) or "Yes"
        callers = [subprocess.Popen([sys.executable, "-c", CALLER, server.url, redis_server.url, name,
                                     str(CALLS_EACH), str(tmp_path / "go")],
                                    cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
                   for name in ("first", "second")]
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"go-{name}").exists() for name in ("first", "second")):
            assert time.monotonic() < deadline and all(p.poll() is None for p in callers), "a caller did not start"
            time.sleep(0.05)
        (tmp_path / "go").touch()
        errors = [p.communicate(timeout=120)[1] for p in callers]
    assert all(p.returncode == 0 for p in callers), [e[-2000:] for e in errors]

    assert len(arrivals) == 2 * CALLS_EACH
    # At most RPM requests in any window (less the allowance for a request that arrived late).
    assert most_in_any_window(arrivals, WINDOW_S - JITTER_S) <= RPM
    # Counted together: the 9th request waited two windows (counted per process, the two would
    # have sent 4 + 4 at once and their 5th a window later).
    assert max(arrivals) - min(arrivals) >= 2 * WINDOW_S - JITTER_S


def test_tokens_count_in_redis_and_an_unreachable_redis_is_an_error(redis_server):
    """The LLM window weighs each request by its tokens in Redis too, and does not fall back to
    counting in memory (the API's window does: tests/unit/api/test_access.py)."""
    from services.llm.ratelimit import RateLimiter
    from services.processes import free_port
    from services.settings import RateLimit

    first, second = (RateLimiter(RateLimit(tpm=100), WINDOW_S, "test:tokens", redis_server.url) for _ in range(2))
    started = time.monotonic()
    first.acquire(60)
    second.acquire(40)  # 100 in all, counted together: fits
    assert time.monotonic() - started < WINDOW_S
    second.acquire(1)  # waits until the first two leave the window
    assert time.monotonic() - started >= WINDOW_S - 0.01
    with pytest.raises(redis.ConnectionError):
        RateLimiter(RateLimit(rpm=1), WINDOW_S, "test:down", f"redis://127.0.0.1:{free_port()}/0").acquire(1)
