"""Batch mode's call path (services.llm.batch) against a real HTTP fake of the OpenAI Batch and
Anthropic Message Batch APIs: one batch per request set, answers and ledger rows written once at
the batch price, a run killed mid-poll resumed on the same batch, a failed or expired batch
failing with the provider's reason and resubmitted by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_batches import FakeBatches
from fake_openai import TEST_KEY as KEY
from llm_ledger import ledger_rows

from lookups import BackendError, BudgetExceededError, InvalidInputError, LLMRequest
from services.campaigns.config import parse_config
from services.llm.batch import require_answered, run_batch
from services.llm.budget import LocalBudget
from services.llm.client import LLMClient
from services.llm.registry import create_backend

PRICE = (1000.0, 2000.0)
PROMPT = "prompt number {} with some words"


def requests(n: int, purpose: str = "explain") -> list[LLMRequest]:
    return [LLMRequest(prompt=PROMPT.format(i), max_tokens=5, purpose=purpose, template_version="v-test")
            for i in range(n)]


@pytest.fixture
def fake():
    with FakeBatches() as server:
        server.respond = lambda prompt: f"answer to {prompt}"
        yield server


@pytest.fixture
def batch_settings(settings, monkeypatch):
    monkeypatch.setenv("LOOKUPS_LLM_PRICES", f'{{"fake-gpt": {list(PRICE)}, "fake-claude": {list(PRICE)}}}')
    monkeypatch.setenv("LOOKUPS_LLM_BATCH_POLL_S", "0.01")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    from services.settings import get_settings

    return get_settings()


@pytest.fixture
def make_client(batch_settings, fake):
    def make(provider: str = "openai", budget: LocalBudget | None = None) -> LLMClient:
        spec, base = ("openai:fake-gpt", fake.url) if provider == "openai" else ("anthropic:fake-claude", fake.root)
        return LLMClient(create_backend(spec, {"base_url": base, "timeout": 5}), settings=batch_settings,
                         budget=budget)

    return make


def billed(client: LLMClient) -> list:
    return [row for row in ledger_rows(client.store) if not row.cache_hit]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_one_batch_answers_every_request_once_at_the_batch_price(make_client, fake, batch_settings, provider):
    client = make_client(provider)
    asked = requests(4) + requests(2)  # two repeated: one request each in the batch
    batches = run_batch(client, asked)
    again = run_batch(make_client(provider), asked)  # all cached: nothing submitted, nothing written

    assert [c["provider"] for c in fake.created] == [provider]
    assert sorted(fake.created[0]["custom_ids"]) == sorted({client.cache_key(r) for r in asked})
    assert [b.id for b in batches] == [b.id for b in again] == [fake.created[0]["id"]]
    assert fake.live == []
    for request in asked:
        assert client.store.get(client.cache_key(request)).text == f"answer to {request.prompt}"
    rows = billed(client)
    assert len(rows) == 4 and {r.cache_key for r in rows} == {client.cache_key(r) for r in asked}
    tokens = len(PROMPT.format(0).split())
    for row in rows:
        assert (row.purpose, row.template_version, row.error) == ("explain", "v-test", None)
        assert row.cost_usd == pytest.approx(0.5 * (tokens * PRICE[0] + PRICE[1]) / 1e6)
    assert batches[0].cost_usd == pytest.approx(sum(r.cost_usd for r in rows))
    assert batch_settings.llm_batch_price_factor == 0.5


def test_a_run_killed_mid_poll_is_resumed_on_the_same_batch(make_client, fake, batch_settings, tmp_path):
    """A process polling a held batch is SIGKILLed; the next run polls that batch, submits
    nothing new, and writes each answer and ledger row once."""
    fake.hold = True
    script = tmp_path / "poll.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from services.llm.batch import run_batch\n"
        "from services.llm.client import LLMClient\n"
        "from services.llm.registry import create_backend\n"
        "from test_batch import requests\n"
        f"backend = create_backend('openai:fake-gpt', {{'base_url': {fake.url!r}, 'timeout': 5}})\n"
        "run_batch(LLMClient(backend), requests(3))\n")
    polling = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy(),
                               cwd=Path(__file__).parents[3])
    try:
        deadline = time.monotonic() + 60
        while len(fake.polls) < 3:
            assert polling.poll() is None, "the polling process ended early"
            assert time.monotonic() < deadline, "the polling process never polled"
            time.sleep(0.05)
    finally:
        polling.send_signal(signal.SIGKILL)
        polling.wait()
    client = make_client()
    assert [client.store.get(client.cache_key(r)) for r in requests(3)] == [None] * 3
    fake.hold = False
    polls_before = len(fake.polls)
    run_batch(client, requests(3))

    assert len(fake.created) == 1
    assert set(fake.polls[polls_before:]) == {fake.created[0]["id"]}
    assert all(client.store.get(client.cache_key(r)) is not None for r in requests(3))
    assert sorted(r.cache_key for r in billed(client)) == sorted(client.cache_key(r) for r in requests(3))


def test_two_processes_polling_one_batch_write_its_results_once(make_client, fake):
    fake.hold = True
    first, second = make_client(), make_client()
    errors: list[BaseException] = []

    def poll(client):
        try:
            run_batch(client, requests(3))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=poll, args=(first,))]
    threads[0].start()
    while not fake.created:
        time.sleep(0.01)
    time.sleep(0.2)  # the first has recorded its batch
    threads.append(threading.Thread(target=poll, args=(second,)))
    threads[1].start()
    time.sleep(0.2)
    fake.hold = False
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(fake.created) == 1
    assert len(billed(first)) == 3


@pytest.mark.parametrize("provider,kind", [("openai", "expired"), ("openai", "failed"),
                                           ("anthropic", "expired"), ("anthropic", "failed")])
def test_a_failed_or_expired_batch_fails_with_the_reason_and_the_next_run_resubmits(
        make_client, fake, provider, kind):
    reason = "the batch could not be completed within the 24h time window" if kind == "expired" else (
        "Overloaded, try again later")
    fake.outcome = (kind, reason)
    client = make_client(provider)
    with pytest.raises(BackendError) as failed:
        run_batch(client, requests(3))
    with pytest.raises(BackendError) as missing:
        require_answered(client, requests(1))

    expected = reason if (provider, kind) != ("anthropic", "expired") else "expired"
    assert expected in str(failed.value) and fake.created[0]["id"] in str(failed.value)
    assert expected in str(missing.value)
    assert all(client.store.get(client.cache_key(r)) is None for r in requests(3))
    assert [r.cost_usd for r in ledger_rows(client.store)] == [0.0] * 3
    assert all(expected in r.error for r in ledger_rows(client.store))

    fake.outcome = None
    run_batch(client, requests(3))
    assert len(fake.created) == 2
    require_answered(client, requests(3))
    assert len([r for r in billed(client) if r.error is None]) == 3


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_the_provider_rejects_fails_with_its_reason_and_records_nothing(make_client, fake, provider):
    fake.reject = "requests.jsonl: line 2: max_tokens is too large"
    client = make_client(provider)
    with pytest.raises(BackendError, match="line 2: max_tokens is too large"):
        run_batch(client, requests(3))
    assert fake.created == [] and ledger_rows(client.store) == []

    fake.reject = None
    run_batch(client, requests(3))
    assert len(fake.created) == 1 and len(billed(client)) == 3


def test_more_requests_than_a_batch_takes_go_out_as_several_batches(make_client, fake, monkeypatch):
    monkeypatch.setenv("LOOKUPS_LLM_BATCH_MAX_REQUESTS", "2")
    from services.settings import get_settings

    client = make_client()
    client.settings = get_settings()
    batches = run_batch(client, requests(5))

    assert [len(c["custom_ids"]) for c in fake.created] == [2, 2, 1]
    assert sorted(b.id for b in batches) == sorted(c["id"] for c in fake.created)
    assert len(billed(client)) == 5


def test_a_batch_over_the_budget_is_not_submitted(make_client, fake):
    client = make_client(budget=LocalBudget(1e-6))
    with pytest.raises(BudgetExceededError):
        run_batch(client, requests(3))
    assert fake.created == []


def test_a_backend_without_batch_mode_is_refused(batch_settings, fake):
    client = LLMClient(create_backend(f"openai-compatible:{fake.url}:fake-gpt"), settings=batch_settings)
    with pytest.raises(BackendError, match="'openai-compatible' has no batch mode"):
        run_batch(client, requests(1))
    assert fake.created == []


def test_batch_mode_refuses_a_backend_without_one_and_a_closed_loop_strategy():
    base = {"corpus": "docs.jsonl", "explainer": "openai:gpt-4o", "classifier": "anthropic", "llm_mode": "batch"}
    assert parse_config(base).llm_mode == "batch"
    with pytest.raises(InvalidInputError, match="the classifier backend 'local' has no batch mode"):
        parse_config({**base, "classifier": "local"})
    with pytest.raises(InvalidInputError, match="the explainer backend 'openai-compatible' has no batch mode"):
        parse_config({**base, "explainer": "openai-compatible:http://127.0.0.1:1/v1:m"})
    with pytest.raises(InvalidInputError, match="'agent' explains in rounds"):
        parse_config({**base, "explainer_strategy": "agent"})
    with pytest.raises(InvalidInputError, match="llm_mode"):
        parse_config({**base, "llm_mode": "offline"})


def test_a_batch_campaign_is_estimated_at_the_batch_price(batch_settings):
    from services.campaigns.estimate import estimate_campaign
    from services.runtime import Runtime

    runtime = Runtime(batch_settings)
    base = {"corpus": "docs.jsonl", "neurons": ["1:2"], "explainer": "openai:fake-gpt",
            "classifier": "anthropic:fake-claude"}
    live = estimate_campaign(parse_config(base), runtime)
    batch = estimate_campaign(parse_config({**base, "llm_mode": "batch"}), runtime)

    assert batch.calls == live.calls > 0 and live.usd > 0
    assert batch.usd == pytest.approx(0.5 * live.usd)
