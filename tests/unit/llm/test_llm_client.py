"""The one call path against a real HTTP fake of OpenAI: cache, ledger, budget, retries, faults."""

from __future__ import annotations

import threading
import time

import pytest
from fake_openai import TEST_KEY as KEY
from fake_openai import error
from llm_ledger import ledger_rows
from sqlalchemy import event

from lookups import BackendUnavailableError, BudgetExceededError, ClassifyRequest, LLMRequest, TestPrompt, head_score
from services.classify import classify
from services.llm.registry import get_scorer

ZERO_SHOT = get_scorer("zero-shot")


def requests(n: int) -> list[LLMRequest]:
    return [LLMRequest(prompt=f"prompt number {i} with some words", max_tokens=1, purpose="test",
                       template_version="v-test") for i in range(n)]


def test_second_run_is_served_from_cache_with_zero_calls(openai_client, fake_server):
    client = openai_client()
    first = client.map(requests(5))
    calls_after_first = len(fake_server.requests)
    second = openai_client().map(requests(5))  # a fresh client on the same database

    assert calls_after_first == 5
    assert len(fake_server.requests) == 5
    assert [r.completion for r in second] == [r.completion for r in first]
    assert all(r.record.cache_hit and r.record.input_tokens == 0 and r.record.cost_usd == 0
               for r in second)


def test_ledger_records_every_call_with_tokens_cost_and_template(openai_client, fake_server, settings):
    client = openai_client()
    client.map(requests(3))
    client.map(requests(3))
    ledger = ledger_rows(client.store)

    assert len(ledger) == 6
    assert [r.cache_hit for r in ledger].count(True) == 3
    per_million_in, per_million_out = settings.llm_prices["fake-gpt"]
    for row in (r for r in ledger if not r.cache_hit):
        served_prompt_tokens = len("prompt number 0 with some words".split())
        assert (row.backend, row.model, row.template_version) == ("openai", "fake-gpt", "v-test")
        assert row.input_tokens == served_prompt_tokens and row.output_tokens == 1
        assert row.cost_usd == pytest.approx((served_prompt_tokens * per_million_in + per_million_out) / 1e6)
        assert row.latency_s > 0 and row.attempts == 1


def test_map_reads_cached_answers_in_one_query_and_sends_only_the_rest(openai_client, fake_server):
    client = openai_client()
    client.map(requests(2))
    statements: list[str] = []
    commits: list[int] = []
    event.listen(client.store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    event.listen(client.store.engine, "commit", lambda *args: commits.append(1))
    cached = client.map(requests(2))
    assert sum("FROM llm_cache" in s for s in statements) == 1
    assert len(commits) == 1  # both ledger rows in one transaction

    mixed = client.map(requests(4))
    assert len(fake_server.requests) == 4  # two sent before, the two new ones now
    assert [r.record.cache_hit for r in mixed] == [True, True, False, False]
    assert [r.completion for r in mixed[:2]] == [r.completion for r in cached]
    assert len(ledger_rows(client.store)) == 2 + 2 + 4


def test_every_map_of_a_backend_runs_on_its_one_pool_of_threads(openai_client, fake_server):
    client = openai_client(max_concurrency=2)
    threads: set[str] = set()
    complete = client.backend.complete

    def recording(*args):
        threads.add(threading.current_thread().name)
        return complete(*args)

    client.backend.complete = recording
    for batch in range(3):
        client.map([LLMRequest(prompt=f"batch {batch} prompt {i}", max_tokens=1) for i in range(4)])
    assert len(fake_server.requests) == 12
    assert 1 <= len(threads) <= 2  # a pool per map started new threads every time


def test_a_backend_builds_one_chat_model_per_shape_of_call(openai_client, fake_server):
    client = openai_client()
    built: list[tuple] = []
    chat_model = client.backend.chat_model
    client.backend.chat_model = lambda *args: built.append(args) or chat_model(*args)
    client.map(requests(3))
    client.call(LLMRequest(prompt="with logprobs", max_tokens=1, logprobs=True))
    client.call(LLMRequest(prompt="again with logprobs", max_tokens=1, logprobs=True))
    assert len(fake_server.requests) == 5
    assert built == [(1, False), (1, True)]


def test_estimate_counts_only_uncached_calls(openai_client):
    client = openai_client()
    before = client.estimate(requests(4))
    client.map(requests(2))
    after = client.estimate(requests(4))

    assert (before.calls, before.cached_calls) == (4, 0)
    assert (after.calls, after.cached_calls) == (2, 2)
    assert before.priced and before.usd > after.usd > 0


def test_budget_cap_stops_before_exceeding(openai_client, fake_server):
    probe = openai_client()
    worst_one_call = probe.estimate(requests(1)).usd
    client = openai_client(budget_usd=worst_one_call * 2.5)

    with pytest.raises(BudgetExceededError, match="budget cap"):
        for request in requests(6):
            client.call(request)
    assert client.budget.spent_usd <= client.budget.cap_usd
    assert 1 <= len(fake_server.requests) < 6
    assert sum(r.cost_usd for r in ledger_rows(client.store)) <= client.budget.cap_usd


def test_budget_cap_holds_under_concurrency(openai_client, fake_server):
    worst_one_call = openai_client().estimate(requests(1)).usd
    client = openai_client(budget_usd=worst_one_call * 3.5, max_concurrency=4)

    with pytest.raises(BudgetExceededError):
        client.map(requests(10))
    assert len(fake_server.requests) <= 3
    assert client.budget.spent_usd <= client.budget.cap_usd


def test_retries_429_with_retry_after_and_500(openai_client, fake_server):
    fake_server.faults.extend([error(429, "slow down", {"Retry-After": "0.3"}), error(500)])
    started = time.perf_counter()
    response = openai_client().call(requests(1)[0])

    assert response.completion.text == "Yes"
    assert response.record.attempts == 3 and len(fake_server.requests) == 3
    assert time.perf_counter() - started >= 0.3  # waited as long as the server asked


def test_timeout_is_retried(openai_client, fake_server):
    fake_server.faults.append(("sleep", 1.5))
    response = openai_client(timeout=0.4).call(requests(1)[0])

    assert response.completion.text == "Yes" and response.record.attempts == 2


def test_retries_are_bounded_and_the_failure_is_ledgered(openai_client, fake_server, settings):
    fake_server.faults.extend([error(503)] * 10)
    client = openai_client()

    with pytest.raises(BackendUnavailableError, match="after 4 attempt"):
        client.call(requests(1)[0])
    assert len(fake_server.requests) == settings.llm_max_attempts == 4
    (row,) = ledger_rows(client.store)
    assert row.error and row.attempts == 4 and not row.cache_hit
    with client.store.engine.connect() as connection:  # a failure is never cached
        assert connection.exec_driver_sql("SELECT count(*) FROM llm_cache").scalar() == 0


def test_unreachable_backend_is_a_clear_error(settings):
    import socket

    from services.llm.client import LLMClient
    from services.llm.registry import create_backend

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = create_backend(f"openai-compatible:http://127.0.0.1:{port}/v1:m", {"timeout": 1})
    with pytest.raises(BackendUnavailableError, match="openai-compatible"):
        LLMClient(backend, settings=settings).call(requests(1)[0])


def test_faults_lose_nothing_and_unparseable_is_not_no(openai_client, fake_server):
    """Every prompt is answered despite faults; empty and garbage answers count as unparseable."""
    from services.llm.registry import get_template

    answers = {"alpha": "Yes", "bravo": "", "charlie": "Banana bread", "delta": "No"}
    fake_server.respond = lambda prompt: next(a for k, a in answers.items() if k in prompt)
    fake_server.faults.extend([error(429, headers={"Retry-After": "0"}), error(500), ("sleep", 1.5)])
    request = ClassifyRequest(explanation="Active on call-sign words.", token=" x", prompts=[
        TestPrompt(text="alpha", active=True), TestPrompt(text="bravo", active=False),
        TestPrompt(text="charlie", active=False), TestPrompt(text="delta", active=True)])

    result = classify(openai_client(timeout=0.5), ZERO_SHOT, get_template("neo2024"), request)
    score = head_score(result)

    assert [r.answer for r in result.results] == ["yes", "unparseable", "unparseable", "no"]
    assert len(fake_server.requests) == 4 + 3  # each fault cost exactly one extra request
    assert (score.tp, score.fn, score.tn, score.fp, score.unparseable) == (1, 1, 0, 2, 2)
    assert score.score == pytest.approx(0.5 * (1 / 2 + 0 / 2))  # as "No" they would have scored 0.75


def test_p_yes_comes_from_openai_logprobs(openai_client, fake_server):
    from services.llm.registry import get_template

    fake_server.logprobs = {"Yes": 0.6, " no": 0.3, "Maybe": 0.1}
    request = ClassifyRequest(explanation="Anything.", prompts=[TestPrompt(text="some text")])
    (result,) = classify(openai_client(), ZERO_SHOT, get_template("neo2024"), request).results

    assert result.p_yes == pytest.approx(0.6 / 0.9)
    assert fake_server.requests[0]["body"]["logprobs"] is True


def test_openai_compatible_backend_needs_no_key_and_hits_the_url(settings, fake_server, monkeypatch):
    from services.llm.client import LLMClient
    from services.llm.registry import create_backend

    monkeypatch.delenv("OPENAI_API_KEY")
    backend = create_backend(f"openai-compatible:{fake_server.url}:my-local-model")
    response = LLMClient(backend, settings=settings).call(requests(1)[0])

    assert response.completion.text == "Yes"
    assert fake_server.requests[0]["body"]["model"] == "my-local-model"
    assert response.record.backend == "openai-compatible"


def test_key_is_sent_but_never_stored_logged_or_shown(openai_client, fake_server, settings, caplog, capfd):
    from lookups import BackendError, ExplainRequest
    from services.explain import explain
    from services.llm.registry import get_strategy, get_template

    caplog.set_level("DEBUG")
    client = openai_client()
    results = explain(client, get_strategy("oneshot"), get_template("neo2024"),
                      [ExplainRequest(token=" x", active_examples=["a"], inactive_examples=["b"])])
    fake_server.faults.append(error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(BackendError) as failure:
        client.call(requests(1)[0])

    assert fake_server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    secret_bits = [KEY, KEY[8:]]
    db_file = settings.cache_dir / "llm.sqlite"
    texts = [str(failure.value), results[0].model_dump_json(), caplog.text, *capfd.readouterr(),
             *(r.model_dump_json() for r in ledger_rows(client.store)),
             db_file.read_bytes().decode("latin-1")]
    for text in texts:
        assert not any(bit in text for bit in secret_bits)


def test_identical_requests_in_flight_are_sent_once(openai_client, fake_server):
    """Concurrent items asking the same prompt (a shuffled control repeats another head's real
    request) share one call: the rest wait for its answer and read it from the cache."""
    fake_server.respond = lambda prompt: (time.sleep(0.3), "Yes")[1]  # all eight overlap the first
    same = requests(1) * 8
    responses = openai_client(max_concurrency=8).map(same)

    assert len(fake_server.requests) == 1
    assert [r.record.cache_hit for r in responses].count(False) == 1
    assert {r.completion.text for r in responses} == {"Yes"}


def test_a_failed_call_in_flight_leaves_the_waiting_ones_to_send(openai_client, fake_server):
    fake_server.faults.append(("status", 400, {}, {"error": {"message": "bad request"}}))
    fake_server.respond = lambda prompt: (time.sleep(0.2), "Yes")[1]
    with pytest.raises(Exception, match="bad request"):
        openai_client(max_concurrency=2).map(requests(1) * 2)
    assert len(fake_server.requests) == 2  # the second request was sent after the first failed


def test_every_client_of_a_runtime_shares_its_one_llm_store(settings, fake_server):
    """Work items each get a client; the cache is opened (its schema checked) once per process."""
    from services.runtime import Runtime

    runtime = Runtime(settings)
    first = runtime.llm(f"openai-compatible:{fake_server.url}:fake-gpt", None)
    second = runtime.llm(f"openai-compatible:{fake_server.url}:other-model", None)
    assert first.store is second.store
    assert first.store.engine.url.database == str(settings.cache_dir / "llm.sqlite")
