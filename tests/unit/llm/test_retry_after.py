"""Retries honour every form of ``Retry-After``: seconds, an HTTP date and OpenAI's
``retry-after-ms``, sent by the fake server on a 429. The wait is read from the client's retry
log (tenacity's ``before_sleep``) and checked against the time the call took."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from fake_openai import rate_limited

from lookups import LLMRequest, retry_after_seconds

REQUEST = LLMRequest(prompt="a rate-limited prompt", max_tokens=1, purpose="test")


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now), usegmt=True)


def waits(caplog) -> list[float]:
    return [float(re.search(r"retrying in ([\d.]+) s", r.getMessage()).group(1))
            for r in caplog.records if r.name == "services.llm.client" and "retrying in" in r.getMessage()]


@pytest.fixture
def call(openai_client, fake_server, caplog):
    """Serve ``fault`` once, then answer; returns (the waits logged, seconds the call took)."""
    caplog.set_level(logging.INFO, logger="services.llm.client")

    def call(fault: tuple) -> tuple[list[float], float]:
        fake_server.faults.append(fault)
        started = time.perf_counter()
        response = openai_client().call(REQUEST)
        elapsed = time.perf_counter() - started
        assert response.record.attempts == 2 and response.completion.text == "Yes"
        return waits(caplog), elapsed

    return call


def test_retry_after_ms(call):
    (wait,), elapsed = call(rate_limited(retry_after_ms="400"))
    assert wait == pytest.approx(0.4)
    assert elapsed >= 0.4


def test_retry_after_ms_wins_over_retry_after(call):
    (wait,), _ = call(rate_limited(retry_after_ms="150", retry_after="30"))
    assert wait == pytest.approx(0.15)


def test_retry_after_seconds(call):
    (wait,), elapsed = call(rate_limited(retry_after="0.3"))
    assert wait == pytest.approx(0.3)
    assert elapsed >= 0.3


def test_retry_after_http_date(call, settings):
    (wait,), elapsed = call(rate_limited(retry_after=http_date(3)))
    # The date was honoured: far longer than the backoff's cap, at most the 3 s asked for (whole
    # seconds, and a loaded machine may take a while between writing the date and reading it).
    assert settings.llm_retry_max_s < wait <= 3.0
    assert elapsed >= wait


@pytest.mark.parametrize("headers", [
    {"retry_after": http_date(-60)},  # a date in the past
    {"retry_after": "-5"},
    {"retry_after_ms": "-200"},
    {"retry_after": "whenever you like"},  # unreadable: as if not sent
], ids=["past-date", "negative-seconds", "negative-ms", "unreadable"])
def test_past_negative_or_unreadable_fall_back_to_the_backoff(call, settings, headers):
    (wait,), _ = call(rate_limited(**headers))
    assert 0 <= wait <= settings.llm_retry_max_s


def test_retry_after_seconds_parses_each_form():
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=timezone.utc)
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=now) == 30.0
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, now=now) == 0.0
    assert retry_after_seconds({"retry-after": "120"}) == 120.0
    assert retry_after_seconds({"Retry-After-Ms": "2500", "Retry-After": "9"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "nan", "retry-after": "4"}) == 4.0
    assert retry_after_seconds({"retry-after": "-1"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
