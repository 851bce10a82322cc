"""Head attribution (step 4) against direct per-prompt computations from ``run_with_cache``."""

import pytest
import torch

from lookups import InvalidInputError
from services.attribution import (
    HeadRef,
    Prompt,
    active_heads,
    attribute_neuron,
    check_head,
    head_attributions,
    heads_worth_explaining,
)
from services.schemas import NeuronRef
from tests.conftest import corpus_texts


@pytest.fixture(scope="module")
def prompts(tiny_gpt2):
    """Seven prompts of different lengths (1 to 40 tokens), so batches need padding."""
    tokenizer = tiny_gpt2.tokenizer
    texts = corpus_texts(7)
    lengths = [1, 3, 8, 15, 40, 22, 5]
    return [tokenizer(t, add_special_tokens=False)["input_ids"][:n] for t, n in zip(texts, lengths)]


def cached(model, prompt):
    bos = model.tokenizer.bos_token_id
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(torch.tensor([[bos, *prompt]]))
    return cache


def head_results(model, cache, layer):
    """(layer, head, d_model): every earlier head's output at the last position, by hand."""
    bridge = model.bridge
    return torch.stack([
        torch.einsum("hd,hdm->hm", cache[f"blocks.{hl}.attn.hook_z"][0, -1], bridge.W_O[hl])
        for hl in range(layer)
    ])


@pytest.mark.parametrize("layer,index", [(1, 7), (3, 100)])
def test_paper_scores_match_per_prompt_cache(tiny_gpt2, prompts, layer, index):
    bridge = tiny_gpt2.bridge
    batched = head_attributions(tiny_gpt2, NeuronRef(layer=layer, index=index), prompts, max_batch=3)
    assert batched.shape == (len(prompts), layer, bridge.cfg.n_heads)
    for row, prompt in enumerate(prompts):
        cache = cached(tiny_gpt2, prompt)
        scale = cache[f"blocks.{layer}.ln2.hook_scale"][0, -1]
        direct = head_results(tiny_gpt2, cache, layer) / scale @ bridge.W_in[layer][:, index]
        torch.testing.assert_close(batched[row], direct, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer,index", [(2, 9), (3, 40)])
def test_linearised_scores_match_finite_differences_through_the_model(tiny_model, prompts, layer, index):
    """Nudging the MLP's normalised input along a head's scaled result changes hook_post[i] by
    eps · attr (central differences through the real forward pass, the scale held fixed)."""
    bridge = tiny_model.bridge
    neuron = NeuronRef(layer=layer, index=index)
    prompt = prompts[4]
    scores = head_attributions(tiny_model, neuron, [prompt], definition="linearised")[0]
    cache = cached(tiny_model, prompt)
    scale = cache[f"blocks.{layer}.ln2.hook_scale"][0, -1]
    directions = head_results(tiny_model, cache, layer) / scale
    tokens = torch.tensor([[tiny_model.tokenizer.bos_token_id, *prompt]])
    eps = 1e-2 / directions.norm(dim=-1).max()

    def post_after(shift):
        def nudge(normalized, hook):
            normalized[0, -1] += shift
            return normalized

        seen = {}
        bridge.run_with_hooks(tokens, stop_at_layer=layer + 1, return_type=None, fwd_hooks=[
            (f"blocks.{layer}.mlp.hook_in", nudge),
            (f"blocks.{layer}.mlp.hook_post", lambda post, hook: seen.update(v=post[0, -1, index].item())),
        ])
        return seen["v"]

    with torch.no_grad():
        for hl in range(layer):
            for h in range(bridge.cfg.n_heads):
                d = directions[hl, h]
                slope = (post_after(eps * d) - post_after(-eps * d)) / (2 * eps)
                assert slope == pytest.approx(scores[hl, h].item(), rel=2e-2, abs=1e-5)


def test_decomposition_reproduces_the_pre_activation(tiny_gpt2, prompts):
    """Scored heads + attention biases + embeddings + earlier MLPs + layer L's own attention
    (its heads also write before MLP L, though step 4 scores only layers < L), each scaled by
    ln2's scale and read by W_in, sum to the neuron's pre-activation minus b_in."""
    bridge = tiny_gpt2.bridge
    layer, index = 3, 17
    scores = head_attributions(tiny_gpt2, NeuronRef(layer=layer, index=index), prompts)
    for row, prompt in enumerate(prompts):
        cache = cached(tiny_gpt2, prompt)
        rest = cache["hook_embed"][0, -1] + cache["hook_pos_embed"][0, -1]
        for hl in range(layer):
            rest = rest + bridge.b_O[hl] + cache[f"blocks.{hl}.hook_mlp_out"][0, -1]
        own_heads = torch.einsum("hd,hdm->m", cache[f"blocks.{layer}.attn.hook_z"][0, -1], bridge.W_O[layer])
        rest = rest + own_heads + bridge.b_O[layer]
        scale = cache[f"blocks.{layer}.ln2.hook_scale"][0, -1]
        total = scores[row].sum() + (rest / scale) @ bridge.W_in[layer][:, index] + bridge.b_in[layer][index]
        pre = cache[f"blocks.{layer}.mlp.hook_pre"][0, -1, index]
        assert total.item() == pytest.approx(pre.item(), rel=1e-4, abs=1e-4)


def test_gelu_linearised_is_the_paper_score_times_gelu_slope(tiny_gpt2, prompts):
    """linearised = gelu'(pre_i) · paper, per prompt. So the head ranking and the active heads
    are identical exactly on prompts where gelu'(pre_i) > 0 (pre_i > about -0.75), and the
    ranking reverses where it is negative."""
    layer, index = 3, 100
    neuron = NeuronRef(layer=layer, index=index)
    paper = head_attributions(tiny_gpt2, neuron, prompts, definition="paper")
    linear = head_attributions(tiny_gpt2, neuron, prompts, definition="linearised")
    n_positive = 0
    for row, prompt in enumerate(prompts):
        pre = cached(tiny_gpt2, prompt)[f"blocks.{layer}.mlp.hook_pre"][0, -1, index].clone()
        pre.requires_grad_(True)
        (slope,) = torch.autograd.grad(torch.nn.functional.gelu(pre, approximate="tanh"), pre)
        torch.testing.assert_close(linear[row], slope * paper[row], rtol=1e-4, atol=1e-7)
        order_paper = paper[row].flatten().argsort(descending=True)
        order_linear = linear[row].flatten().argsort(descending=True)
        if slope > 0:
            n_positive += 1
            assert torch.equal(order_paper, order_linear)
            assert torch.equal(active_heads(paper[row : row + 1]), active_heads(linear[row : row + 1]))
        else:
            assert torch.equal(order_paper, order_linear.flip(0))
    assert n_positive > 0


def test_active_heads_use_mean_plus_two_std_per_prompt():
    scores = torch.zeros(2, 2, 5)
    scores[0, 1, 3] = 10.0  # one outlier: active
    scores[1] = torch.arange(10.0).reshape(2, 5)  # evenly spread: nothing 2 std above the mean
    active = active_heads(scores)
    assert active[0].nonzero().tolist() == [[1, 3]]
    assert not active[1].any()


def test_heads_worth_explaining_keeps_25_to_75_percent():
    active = torch.zeros(4, 1, 5, dtype=torch.bool)
    active[:1, 0, 1] = True  # 25 %
    active[:2, 0, 2] = True  # 50 %
    active[:3, 0, 3] = True  # 75 %
    active[:, 0, 4] = True  # 100 %
    found = heads_worth_explaining(active)
    assert [(a.head.head, a.active_fraction) for a in found] == [(3, 0.75), (2, 0.5), (1, 0.25)]
    assert [a.head.head for a in heads_worth_explaining(active, 0.5, 1.0)] == [4, 3, 2]


def test_attribute_neuron_records_definition_scores_and_active_heads(tiny_model, prompts):
    neuron = NeuronRef(layer=2, index=3)
    records = [Prompt(text=str(i), tokens=p) for i, p in enumerate(prompts)]
    result = attribute_neuron(tiny_model, neuron, records)
    assert result.definition == ("linearised" if tiny_model.info.gated_mlp else "paper")
    scores = head_attributions(tiny_model, neuron, prompts)
    for record, row in zip(result.prompts, scores):
        assert record.scores == row.tolist()
        threshold = row.mean() + 2 * row.std()
        assert record.active == [HeadRef(layer=hl, head=h) for hl, h in (row > threshold).nonzero().tolist()]


def test_bad_input_is_refused_with_the_allowed_range(tiny_model, tiny_llama, prompts):
    with pytest.raises(InvalidInputError, match="layer must be in 1..3"):
        head_attributions(tiny_model, NeuronRef(layer=0, index=1), prompts)
    with pytest.raises(InvalidInputError, match="out of range 0..3"):
        head_attributions(tiny_model, NeuronRef(layer=4, index=1), prompts)
    with pytest.raises(InvalidInputError, match="at least one prompt"):
        head_attributions(tiny_model, NeuronRef(layer=2, index=1), [])
    with pytest.raises(InvalidInputError, match="gated MLP"):
        head_attributions(tiny_llama, NeuronRef(layer=2, index=1), prompts, definition="paper")
    neuron = NeuronRef(layer=2, index=1)
    with pytest.raises(InvalidInputError, match="head index 4 out of range 0..3"):
        check_head(tiny_model, neuron, HeadRef(layer=1, head=4))
    with pytest.raises(InvalidInputError, match="layer 2 out of range 0..1"):
        check_head(tiny_model, neuron, HeadRef(layer=2, head=0))
    with pytest.raises(InvalidInputError, match="LAYER.HEAD"):
        HeadRef.parse("20:3")
