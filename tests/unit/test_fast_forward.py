"""The fast path (services/fast_forward.py) against the bridge it stands in for: the same
``hook_post`` on GPT-2, Llama (SmolLM2's shape) and Gemma 3 after compatibility mode processed
the weights, the same scan top K and truncated prompts, and the bridge where there is no fast path."""

import dataclasses
import logging

import pytest
import torch

from lookups import Document
from services.activations import pad_right, run_mlp_post
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.truncate import truncate_contexts
from tests.conftest import _save_tiny, corpus_texts

CONTEXT = 64
NEURONS = [NeuronRef(layer=3, index=5), NeuronRef(layer=1, index=17), NeuronRef(layer=3, index=40),
           NeuronRef(layer=2, index=100)]


@pytest.fixture(scope="session", params=["gpt2", "llama", "gemma3"])
def model(request):
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture(scope="module")
def documents():
    return [Document(id=f"doc-{i:02d}", text=t[: 60 + 23 * i]) for i, t in enumerate(corpus_texts(20))]


def bridge_only(model):
    return dataclasses.replace(model, fast=None)


def test_fast_post_equals_the_bridge_hook_post_on_processed_weights(model):
    assert model.fast is not None
    torch.manual_seed(1)
    tokens, _ = pad_right([torch.randint(1, 500, (n,)).tolist() for n in (40, 31, 7)], 0, "cpu")
    with torch.inference_mode():
        _, cache = model.bridge.run_with_cache(tokens)
    posts = {}
    model.fast.run_mlp_post(tokens, range(4), lambda layer, post: posts.__setitem__(layer, post.clone()))
    for layer in range(4):
        expected = cache[f"blocks.{layer}.mlp.hook_post"]
        torch.testing.assert_close(posts[layer], expected, rtol=1e-5, atol=1e-5)


def test_fast_path_holds_the_bridge_tensors_not_a_copy(model):
    bridge_tensors = {t.data_ptr() for t in [*model.bridge.parameters(), *model.bridge.buffers()]}
    fast = [*model.fast.model.parameters(), *model.fast.model.buffers()]
    assert fast and all(t.data_ptr() in bridge_tensors for t in fast)
    assert not any(t.is_meta for t in fast)


def test_fast_pass_stops_after_the_deepest_read(model):
    ran = []
    later = model.fast.mlp_out[2].register_forward_pre_hook(lambda *_: ran.append("layer 2"))
    try:
        run_mlp_post(model, torch.tensor([[0, 5, 6, 7]]), [1, 0], lambda layer, post: ran.append(layer))
    finally:
        later.remove()
    assert ran == [0, 1]


def test_scan_top_k_is_the_bridge_top_k(model, documents):
    fast = scan_corpus(model, NEURONS, documents, top_k=6, context_length=CONTEXT)
    slow = scan_corpus(bridge_only(model), NEURONS, documents, top_k=6, context_length=CONTEXT)
    for a, b in zip(fast, slow):
        assert [(h.doc_id, h.position) for h in a.hits] == [(h.doc_id, h.position) for h in b.hits]
        assert [h.activation for h in a.hits] == pytest.approx([h.activation for h in b.hits], abs=1e-5)


def test_truncated_prompts_are_the_bridge_prompts(model, documents):
    contexts = scan_corpus(model, NEURONS, documents, top_k=6, context_length=CONTEXT)
    fast = truncate_contexts(model, contexts, documents, context_length=CONTEXT)
    slow = truncate_contexts(bridge_only(model), contexts, documents, context_length=CONTEXT)
    assert any(c.prompts for c in fast)
    for a, b in zip(fast, slow):
        assert [(p.doc_id, p.tokens) for p in a.prompts] == [(p.doc_id, p.tokens) for p in b.prompts]
        assert [p.activation for p in a.prompts] == pytest.approx([p.activation for p in b.prompts], abs=1e-5)


def test_an_architecture_without_sdpa_falls_back_to_the_bridge_with_one_log_line(
        tiny_tokenizer_dir, tmp_path, documents, caplog):
    """Bloom has no SDPA attention in transformers: its scan runs on the bridge."""
    from transformers import BloomConfig, BloomForCausalLM

    from services.subject_model import load_subject_model

    config = BloomConfig(n_layer=4, hidden_size=64, n_head=4, vocab_size=512, bos_token_id=0, eos_token_id=0,
                         pad_token_id=0)
    path = _save_tiny(config, BloomForCausalLM, tiny_tokenizer_dir, tmp_path / "bloom")
    with caplog.at_level(logging.WARNING, logger="services.fast_forward"):
        bloom = load_subject_model(str(path), device="cpu", dtype="float32")
    assert bloom.fast is None
    [record] = [r for r in caplog.records if r.name == "services.fast_forward"]
    assert "BloomForCausalLM" in record.getMessage() and "bridge" in record.getMessage()
    result = scan_corpus(bloom, [NeuronRef(layer=3, index=7)], documents, top_k=3, context_length=CONTEXT)[0]
    assert len(result.hits) == 3
