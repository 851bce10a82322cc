"""The LLM cache key covers every option that shapes an answer: a sampled run never gets the
greedy run's cached answers, while options that only change how a request travels share them."""

from __future__ import annotations

from contract import LLMRequest
from services.llm.registry import create_backend


def requests(n: int) -> list[LLMRequest]:
    return [LLMRequest(prompt=f"cache key prompt {i}", max_tokens=1, purpose="test") for i in range(n)]


def test_clients_differing_only_in_temperature_share_no_cache_entries(openai_client, fake_server):
    greedy = openai_client().map(requests(3))
    sampled = openai_client(temperature=1.0).map(requests(3))

    assert len(fake_server.requests) == 6  # the sampled run asked the server again, every prompt
    assert [r["body"]["temperature"] for r in fake_server.requests] == [0.0] * 3 + [1.0] * 3
    assert not any(r.record.cache_hit for r in greedy + sampled)
    assert {r.record.cache_key for r in greedy}.isdisjoint({r.record.cache_key for r in sampled})
    assert greedy[0].record.cache_key != sampled[0].record.cache_key


def test_the_same_options_share_the_cache(openai_client, fake_server):
    openai_client(temperature=1.0).map(requests(3))
    again = openai_client(temperature=1.0).map(requests(3))
    # timeout and concurrency change how a request travels, not what it answers
    transport = openai_client(temperature=1.0, timeout=7, max_concurrency=3).map(requests(3))

    assert len(fake_server.requests) == 3
    assert all(r.record.cache_hit for r in again + transport)


def test_answer_options_leave_out_transport_options(tmp_path, settings):
    openai = create_backend("openai-compatible:http://127.0.0.1:9/v1:m",
                            {"temperature": 0.5, "timeout": 3, "max_concurrency": 2, "base_url": "http://x/v1"})
    anthropic = create_backend("anthropic:claude-x", {"timeout": 3})
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")  # loaded only on the first call
    local = create_backend(f"local:{gguf}", {"n_ctx": 1024, "n_threads": 2, "reuse_prefix": False,
                                            "draft_tokens": 4})

    assert openai.answer_options() == {"temperature": 0.5}
    assert anthropic.answer_options() == {"temperature": 0.0}
    assert local.answer_options() == {}  # greedy: nothing of its options changes an answer
