import pytest
import torch

from lookups import Document
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.truncate import truncate_contexts
from tests.conftest import corpus_texts

CONTEXT = 96


@pytest.fixture(scope="module")
def documents():
    return [Document(id=f"doc-{i:02d}", text=t) for i, t in enumerate(corpus_texts(16))]


def activation_at_last_token(model, neuron, token_ids):
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(torch.tensor([[model.tokenizer.bos_token_id, *token_ids]]))
    return float(cache[f"blocks.{neuron.layer}.mlp.hook_post"][0, -1, neuron.index])


@pytest.fixture(scope="module")
def truncated(tiny_gpt2, documents):
    neurons = [NeuronRef(layer=3, index=i) for i in (2, 9, 30)]
    contexts = scan_corpus(tiny_gpt2, neurons, documents, top_k=6, context_length=CONTEXT)
    return contexts, truncate_contexts(tiny_gpt2, contexts, documents, context_length=CONTEXT)


def test_prompts_end_at_the_firing_token_and_keep_the_activation(tiny_gpt2, documents, truncated):
    contexts, results = truncated
    by_id = {d.id: d for d in documents}
    for context, result in zip(contexts, results):
        hits = {h.doc_id: h for h in context.hits}
        assert result.prompts, "every neuron keeps some prompts"
        for prompt in result.prompts:
            hit = hits[prompt.doc_id]
            doc_ids = tiny_gpt2.tokenizer(by_id[prompt.doc_id].text, add_special_tokens=False)["input_ids"]
            firing = doc_ids[: hit.position]  # position counts BOS as 0
            assert firing[-len(prompt.tokens):] == prompt.tokens  # a suffix ending at the firing token
            recomputed = activation_at_last_token(tiny_gpt2, context.neuron, prompt.tokens)
            assert recomputed == pytest.approx(prompt.activation, abs=1e-4)
            assert recomputed >= 0.8 * hit.activation - 1e-4
            assert prompt.original_activation == hit.activation
            assert prompt.text == tiny_gpt2.tokenizer.decode(prompt.tokens)


def test_prompts_follow_the_order_of_the_hits(truncated):
    contexts, results = truncated
    for context, result in zip(contexts, results):
        order = [h.doc_id for h in context.hits]
        kept = [order.index(p.doc_id) for p in result.prompts]
        assert kept == sorted(kept)


def test_long_prompts_are_dropped_and_the_count_is_capped(tiny_gpt2, documents, truncated):
    contexts, results = truncated
    capped = truncate_contexts(tiny_gpt2, contexts, documents, context_length=CONTEXT,
                               max_prompt_tokens=4, prompts_per_neuron=2)
    for full, short in zip(results, capped):
        assert len(short.prompts) <= 2
        assert all(len(p.tokens) < 4 for p in short.prompts)
        assert [p.doc_id for p in short.prompts] == [p.doc_id for p in full.prompts if len(p.tokens) < 4][:2]



def test_a_neuron_searches_only_the_hits_it_needs(tiny_gpt2, documents, truncated, monkeypatch):
    """With nothing dropped, two prompts per neuron take two searches per neuron, not one per hit."""
    import services.truncate as truncate_module

    contexts, results = truncated
    searched: list[int] = []
    real = truncate_module.last_token_activations

    def recording(model, prompts, neurons, **kwargs):
        searched.append(max(sum(n == c.neuron for n in neurons) for c in contexts))
        return real(model, prompts, neurons, **kwargs)

    monkeypatch.setattr(truncate_module, "last_token_activations", recording)
    capped = truncate_contexts(tiny_gpt2, contexts, documents, context_length=CONTEXT,
                               max_prompt_tokens=CONTEXT + 1, prompts_per_neuron=2)
    assert searched and max(searched) <= 2
    assert [[p.doc_id for p in c.prompts] for c in capped] == [[p.doc_id for p in r.prompts][:2] for r in results]
