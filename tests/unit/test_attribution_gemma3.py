"""Head attribution on a Gemma-3-shaped tiny model: RMSNorms around both sublayers (the
post-attention norm sits between each head and the residual stream), GeGLU MLP, sliding-window
and global layers, one KV head."""

import pytest
import torch

from services.attribution import head_attributions, head_contributions, input_directions
from services.schemas import NeuronRef
from tests.conftest import corpus_texts

NEURON = NeuronRef(layer=3, index=21)


@pytest.fixture(scope="module")
def prompts(tiny_gemma3):
    """Prompts of 2 to 30 tokens: longer than the sliding window, and of different lengths."""
    tokenizer = tiny_gemma3.tokenizer
    return [tokenizer(t, add_special_tokens=False)["input_ids"][:n]
            for t, n in zip(corpus_texts(4), [30, 2, 12, 25])]


def cached(model, prompt):
    with torch.no_grad():
        return model.bridge.run_with_cache(torch.tensor([[model.tokenizer.bos_token_id, *prompt]]))[1]


def head_vectors(model, cache, layer):
    """(layer, head, d_model): each earlier head's write into the residual stream at the last
    position, by hand: its result through the block's post-attention RMSNorm, scale frozen."""
    rows = []
    for hl in range(layer):
        block = model.bridge.blocks[hl]
        result = torch.einsum("hd,hdm->hm", cache[f"blocks.{hl}.attn.hook_z"][0, -1], block.attn.W_O)
        rows.append(result / cache[f"blocks.{hl}.ln1_post.hook_scale"][0, -1] * (1 + block.ln1_post.weight))
    return torch.stack(rows)


def test_head_shares_and_the_other_terms_add_up_to_the_measured_inputs(tiny_gemma3, prompts):
    """pre = (embedding + every attention and MLP output written before the MLP) / ln2 scale ·
    w_gate, and likewise with w_in; the heads below L account for their layers' attention outputs."""
    assert tiny_gemma3.info.architecture == "Gemma3ForCausalLM" and tiny_gemma3.info.gated_mlp
    layer = NEURON.layer
    found = head_contributions(tiny_gemma3, NEURON, prompts, max_batch=2)
    directions = input_directions(tiny_gemma3, NEURON)
    assert found.heads.shape == (4, layer, 4, 2) and found.measured.shape == (4, 2)
    for row, prompt in enumerate(prompts):
        cache = cached(tiny_gemma3, prompt)
        scale = cache[f"blocks.{layer}.ln2.hook_scale"][0, -1]
        measured = torch.stack([cache[f"blocks.{layer}.mlp.hook_pre"][0, -1, NEURON.index],
                                cache[f"blocks.{layer}.mlp.hook_pre_linear"][0, -1, NEURON.index]])
        torch.testing.assert_close(found.measured[row], measured)
        others = cache["blocks.0.hook_resid_pre"][0, -1] + cache[f"blocks.{layer}.hook_attn_out"][0, -1]
        others = others + sum(cache[f"blocks.{hl}.hook_mlp_out"][0, -1] for hl in range(layer))
        total = found.heads[row].sum(dim=(0, 1)) + others / scale @ directions
        torch.testing.assert_close(total, measured, rtol=1e-4, atol=1e-4)
        for hl in range(layer):  # per layer: the heads' shares are that layer's attention output
            attn_out = cache[f"blocks.{hl}.hook_attn_out"][0, -1] / scale @ directions
            torch.testing.assert_close(found.heads[row, hl].sum(dim=0), attn_out, rtol=1e-4, atol=1e-5)


def test_linearised_scores_are_the_geglu_gradient_along_each_head(tiny_gemma3, prompts):
    """gelu_tanh(x·w_gate)(x·w_in) differentiated at the cached normalised MLP input, dotted with
    each head's post-normed write over the ln2 scale."""
    bridge, layer, index = tiny_gemma3.bridge, NEURON.layer, NEURON.index
    mlp = bridge.blocks[layer].mlp
    scores = head_attributions(tiny_gemma3, NEURON, prompts)
    assert scores.shape == (4, layer, 4)
    for row, prompt in enumerate(prompts):
        cache = cached(tiny_gemma3, prompt)
        x = cache[f"blocks.{layer}.mlp.hook_in"][0, -1].clone().requires_grad_(True)
        post = torch.nn.functional.gelu(x @ mlp.W_gate[:, index], approximate="tanh") * (x @ mlp.W_in[:, index])
        assert post.item() == pytest.approx(cache[f"blocks.{layer}.mlp.hook_post"][0, -1, index].item(), rel=1e-4)
        (direction,) = torch.autograd.grad(post, x)
        scale = cache[f"blocks.{layer}.ln2.hook_scale"][0, -1]
        with torch.no_grad():
            direct = head_vectors(tiny_gemma3, cache, layer) / scale @ direction
        torch.testing.assert_close(scores[row], direct, rtol=1e-3, atol=1e-5)
