"""The REST API under a burst of concurrent requests (issue 13), a smaller run of bench/api_load.py:
a real ``lookups api`` process with a private redis-server and a SQLite store, 50 status polls
and 5 campaign submissions in flight at once over loopback. No request may get a 5xx or go
unanswered; every poll is answered 200, every submission 202, and every submission is stored
and enqueued. (bench/RESULTS.md has the full run's latencies.)"""

from __future__ import annotations

import pytest

from bench.api_load import run, summary

pytestmark = pytest.mark.timeout(180)


def test_a_burst_of_polls_and_submissions_gets_no_server_error(tmp_path, corpus_path):
    done = run(polls=50, submissions=5, rounds=1, seeded=3, corpus=corpus_path, directory=tmp_path)

    [result] = done.rounds
    figures = summary(result)
    assert figures["5xx"] == 0, figures
    assert result.statuses["poll"] == {200: 50}, figures
    assert result.statuses["submit"] == {202: 5}, figures
    assert done.campaigns_stored == 3 + 1 + 5  # seeded, warm-up, burst
    assert done.messages_enqueued == 3 + 1 + 5  # each one's first stage: one neurons item, on the gpu queue
