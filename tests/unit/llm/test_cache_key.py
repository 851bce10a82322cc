"""The LLM cache key covers every option that shapes an answer: a sampled run never gets the
greedy run's cached answers, while options that only change how a request travels share them."""

from __future__ import annotations

from lookups import LLMRequest
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


def test_k_samples_of_one_prompt_are_k_cache_entries_and_carry_their_temperature_and_seed(openai_client, fake_server):
    plain = requests(1)[0]
    samples = [plain.model_copy(update={"temperature": 0.8, "sample": i}) for i in range(3)]
    client = openai_client()
    first = client.map([plain, *samples])
    again = client.map([plain, *samples])

    assert len({r.record.cache_key for r in first}) == 4 and all(r.record.cache_hit for r in again)
    bodies = [r["body"] for r in fake_server.requests]
    assert sorted((b.get("temperature"), b.get("seed")) for b in bodies) == [
        (0.0, None), (0.8, 0), (0.8, 1), (0.8, 2)]


def test_a_request_without_a_temperature_keeps_its_cache_key(openai_client):
    client = openai_client()
    plain = requests(1)[0]
    assert client.cache_key(plain) == client.cache_key(plain.model_copy(update={"sample": 5}))


def test_the_local_sampler_is_greedy_without_a_temperature_and_seeded_with_one():
    import numpy as np

    from plugins.backends.llama_chat import sampler

    logits = np.log(np.array([0.1, 0.5, 0.4]))
    assert [sampler(None, 0)(logits) for _ in range(5)] == [1] * 5
    draws = [sampler(1.0, seed) for seed in range(2)]
    runs = [[draw(logits) for _ in range(40)] for draw in draws]
    again = sampler(1.0, 0)
    assert runs[0] == [again(logits) for _ in range(40)]  # a seed gives the same draws
    assert runs[0] != runs[1] and set(runs[0]) == {0, 1, 2}
