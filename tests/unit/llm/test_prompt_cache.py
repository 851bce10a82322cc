"""Provider prompt caching: a head's test prompts share its explanation, which goes to Anthropic
as a block marked ``cache_control``; tokens read from or written to a provider's cache are
ledgered and priced as the provider bills them (Anthropic: reads 0.1×, writes 1.25× the input
price; OpenAI: cached reads 0.5×)."""

from __future__ import annotations

import pytest
from fake_anthropic import FakeAnthropic
from llm_ledger import ledger_rows

from lookups import ClassifyRequest, LLMRequest, TestPrompt, share_prefix
from services.llm.client import LLMClient
from services.llm.registry import create_backend, get_scorer, get_template

PRICE_IN, PRICE_OUT = 1000.0, 2000.0  # USD per million tokens, the fixture's price of fake-gpt
EXPLANATION = "fires on closing brackets of nested lists in code"
EXAMPLES = ["alpha = [[1, 2], [3", "beta(x) for x in [[4], [5", "gamma: [[6, [7"]


def judge_requests(n: int) -> list[LLMRequest]:
    request = ClassifyRequest(neuron="1:2", head="0.1", token=" ]", explanation=EXPLANATION,
                              prompts=[TestPrompt(text=text, active=i % 2 == 0) for i, text in enumerate(EXAMPLES[:n])])
    return get_scorer("zero-shot").requests(get_template("neo2024"), request)


@pytest.fixture
def anthropic_client(settings, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    prices = {**settings.llm_prices, "fake-claude": (PRICE_IN, PRICE_OUT)}
    with FakeAnthropic() as fake:
        backend = create_backend("anthropic:fake-claude", {"base_url": fake.url, "max_concurrency": 1})
        yield LLMClient(backend, settings=settings.model_copy(update={"llm_prices": prices})), fake


def test_the_zero_shot_judge_marks_the_explanation_as_the_shared_prefix():
    requests = judge_requests(3)
    shared = {r.prompt[:r.cache_prefix] for r in requests}
    assert len(shared) == 1
    prefix = shared.pop()
    assert EXPLANATION in prefix and prefix.endswith((" ", "\n"))  # cut between words
    assert [r.prompt[r.cache_prefix:].startswith(text) for r, text in zip(requests, EXAMPLES, strict=True)] == \
        [True] * 3


def test_the_cached_prefix_is_not_part_of_the_response_cache_key(openai_client, fake_server):
    client = openai_client()
    plain = LLMRequest(prompt="shared words then the rest", max_tokens=1)
    client.call(plain)
    marked = client.call(plain.model_copy(update={"cache_prefix": len("shared words ")}))
    assert marked.record.cache_hit and len(fake_server.requests) == 1


def test_one_request_or_prompts_sharing_no_word_are_left_unmarked():
    one = [LLMRequest(prompt="alone here", max_tokens=1)]
    assert share_prefix(one) == one
    apart = [LLMRequest(prompt="alpha one", max_tokens=1), LLMRequest(prompt="alps two", max_tokens=1)]
    assert [r.cache_prefix for r in share_prefix(apart)] == [0, 0]
    with pytest.raises(ValueError, match="longer than the prompt"):
        LLMRequest(prompt="short", max_tokens=1, cache_prefix=6)


def test_anthropic_gets_the_prefix_as_a_cached_block_and_the_ledger_prices_reads_and_writes(anthropic_client):
    client, fake = anthropic_client
    requests = judge_requests(3)
    responses = client.map(requests)

    assert [r.completion.text for r in responses] == ["Yes"] * 3
    for body, request in zip(fake.requests, requests, strict=True):
        cached, rest = body["messages"][0]["content"]
        assert cached == {"type": "text", "text": request.prompt[:request.cache_prefix],
                          "cache_control": {"type": "ephemeral"}}
        assert rest["text"] == request.prompt[request.cache_prefix:] and "cache_control" not in rest
    prefix_words = len(requests[0].prompt[:requests[0].cache_prefix].split())
    ledger = ledger_rows(client.store)
    assert [(r.cache_write_tokens, r.cache_read_tokens) for r in ledger] == \
        [(prefix_words, 0), (0, prefix_words), (0, prefix_words)]
    for row, request in zip(ledger, requests, strict=True):
        rest_words = len(request.prompt[request.cache_prefix:].split())
        assert row.input_tokens == prefix_words + rest_words  # all the input, cached or not
        factor = 1.25 if row.cache_write_tokens else 0.1
        assert row.cost_usd == pytest.approx(((rest_words + factor * prefix_words) * PRICE_IN + PRICE_OUT) / 1e6)


def test_openai_cached_tokens_are_ledgered_at_half_the_input_price(openai_client, fake_server):
    fake_server.cached_tokens = 4
    client = openai_client()
    response = client.call(LLMRequest(prompt="one two three four five six", max_tokens=1))

    row = ledger_rows(client.store)[-1]
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (6, 4, 0)
    assert row.cost_usd == pytest.approx(((2 + 0.5 * 4) * PRICE_IN + PRICE_OUT) / 1e6)
    assert response.record.cost_usd == row.cost_usd
