"""Ablation check (step 9): zeroing one head's output and the KS test over the drops."""

import pytest
import torch

from lookups import InvalidInputError
from services.ablation import (
    ablate_heads,
    activation_drops,
    ks_test,
    neuron_token,
    token_probability_drops,
)
from services.attribution import HeadRef, Prompt, attribute_neuron
from services.schemas import NeuronRef
from tests.conftest import corpus_texts


@pytest.fixture(scope="module")
def prompts(tiny_gpt2):
    tokenizer = tiny_gpt2.tokenizer
    return [tokenizer(t, add_special_tokens=False)["input_ids"][:n]
            for t, n in zip(corpus_texts(6), [4, 9, 2, 17, 30, 12])]


def probability_without_head_output(model, prompt, head, token_id):
    """Per prompt, by subtracting the head's result z_h @ W_O^h from attn_out at every position."""
    bridge = model.bridge
    tokens = torch.tensor([[model.tokenizer.bos_token_id, *prompt]])
    z = {}

    def remove(attn_out, hook):
        return attn_out - z["z"][0, :, head.head] @ bridge.W_O[head.layer, head.head]

    with torch.no_grad():
        clean = bridge(tokens)[0, -1].softmax(-1)[token_id]
        ablated = bridge.run_with_hooks(tokens, fwd_hooks=[
            (f"blocks.{head.layer}.attn.hook_z", lambda t, hook: z.update(z=t.clone())),
            (f"blocks.{head.layer}.hook_attn_out", remove),
        ])[0, -1].softmax(-1)[token_id]
    return clean.item(), ablated.item()


def whole_pass(model, prompt, neuron, head=None):
    """One prompt alone, a whole pass with ``head`` zeroed (if given): the last position's
    logits and the neuron's activation there."""
    seen = {}

    def zero(z, hook):
        z[:, :, head.head] = 0.0
        return z

    hooks = [(f"blocks.{head.layer}.attn.hook_z", zero)] if head else []
    hooks.append((f"blocks.{neuron.layer}.mlp.hook_post",
                  lambda post, hook: seen.update(post=post[0, -1, neuron.index].item())))
    with torch.no_grad():
        logits = model.bridge.run_with_hooks(torch.tensor([[model.tokenizer.bos_token_id, *prompt]]), fwd_hooks=hooks)
    return logits[0, -1], seen["post"]


@pytest.mark.parametrize("head", [HeadRef(layer=0, head=1), HeadRef(layer=2, head=2)])
def test_zeroing_z_removes_exactly_that_heads_output(tiny_model, prompts, head):
    """Also for grouped KV heads (tiny Llama: 4 query heads on 2 KV heads) only head h goes."""
    token_id = 42
    clean, by_head = token_probability_drops(tiny_model, [head], token_id, prompts, max_batch=4)
    ablated = by_head[head]
    assert clean.shape == ablated.shape == (len(prompts),)
    for row, prompt in enumerate(prompts):
        expected_clean, expected_ablated = probability_without_head_output(tiny_model, prompt, head, token_id)
        assert clean[row].item() == pytest.approx(expected_clean, rel=1e-4)
        assert ablated[row].item() == pytest.approx(expected_ablated, rel=1e-4)
    assert not torch.allclose(clean, ablated)


def test_heads_ablated_together_match_each_ablated_alone(tiny_model, prompts):
    """One clean pass serves several heads; each head's ablated pass is its own."""
    heads = [HeadRef(layer=0, head=1), HeadRef(layer=2, head=2), HeadRef(layer=1, head=0)]
    clean, together = token_probability_drops(tiny_model, heads, 42, prompts, max_batch=3)
    for head in heads:
        alone_clean, alone = token_probability_drops(tiny_model, [head], 42, prompts)
        assert torch.allclose(clean, alone_clean) and torch.allclose(together[head], alone[head])
    assert not torch.allclose(together[heads[0]], together[heads[1]])


def test_ablating_a_head_that_writes_the_token_lowers_its_probability(tiny_gpt2, prompts):
    """In the last layer (nothing downstream but the final norm), pick the token the head's own
    output raises most on each prompt: removing the head must lower that token's probability."""
    bridge = tiny_gpt2.bridge
    head = HeadRef(layer=3, head=0)
    for prompt in prompts:
        with torch.no_grad():
            _, cache = bridge.run_with_cache(torch.tensor([[tiny_gpt2.tokenizer.bos_token_id, *prompt]]))
        direct = cache["blocks.3.attn.hook_z"][0, -1, 0] @ bridge.W_O[3, 0] @ bridge.W_U
        token_id = int(direct.argmax())
        clean, ablated = token_probability_drops(tiny_gpt2, [head], token_id, [prompt])
        assert clean[0] - ablated[head][0] > 0


def test_ablate_head_labels_prompts_and_runs_the_ks_test(tiny_gpt2, prompts):
    neuron = NeuronRef(layer=3, index=5)
    attribution = attribute_neuron(tiny_gpt2, neuron, [Prompt(text=str(i), tokens=p) for i, p in enumerate(prompts)])
    head = next(h for p in attribution.prompts for h in p.active)  # active on at least one prompt
    (result,) = ablate_heads(tiny_gpt2, attribution, [head])
    assert result.token_id == neuron_token(tiny_gpt2, neuron)[0]
    assert result.token_id == int((tiny_gpt2.bridge.W_out[3][5] @ tiny_gpt2.bridge.W_U).argmax())
    assert result.definition == "paper"
    assert [r.active for r in result.prompts] == [head in p.active for p in attribution.prompts]
    for r in result.prompts:
        assert r.drop == pytest.approx(r.p_clean - r.p_ablated)
    n_active = sum(r.active for r in result.prompts)
    assert 0 < n_active < len(prompts)  # this neuron's head 2.1 is active on 2 of 6 prompts
    assert (result.ks.n_active, result.ks.n_inactive) == (n_active, len(prompts) - n_active)


def test_activation_drops_match_each_prompt_run_alone(tiny_model, prompts):
    """Clean minus ablated hook_post of the neuron at the last token, batched and padded, one
    clean pass for every head; checked against per-prompt runs with and without the head."""
    neuron = NeuronRef(layer=3, index=5)
    heads = [HeadRef(layer=0, head=1), HeadRef(layer=2, head=3)]
    drops = activation_drops(tiny_model, neuron, heads, prompts, max_batch=4)
    for head in heads:
        assert drops[head].shape == (len(prompts),)
        for row, prompt in enumerate(prompts):
            expected = whole_pass(tiny_model, prompt, neuron)[1] - whole_pass(tiny_model, prompt, neuron, head)[1]
            assert drops[head][row].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert any(drops[h].abs().max() > 0 for h in heads)


def test_passes_started_at_the_heads_block_match_whole_passes_on_gemma3(tiny_gemma3):
    """Ablated passes start at the head's block from the clean pass's recorded block inputs. On
    Gemma 3 each block gets its own mask (sliding window 8 on layers 0-2, global on 3) and the
    final logits are soft-capped: both must come out as in a whole pass with the head zeroed."""
    tokenizer = tiny_gemma3.tokenizer
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"][:n]
               for t, n in zip(corpus_texts(5), [30, 2, 12, 25, 19])]
    heads = [HeadRef(layer=1, head=2), HeadRef(layer=0, head=0)]
    neuron, token_id = NeuronRef(layer=2, index=7), 42
    clean, ablated = token_probability_drops(tiny_gemma3, heads, token_id, prompts, max_batch=2)
    drops = activation_drops(tiny_gemma3, neuron, heads, prompts, max_batch=3)

    for row, prompt in enumerate(prompts):
        logits, post_clean = whole_pass(tiny_gemma3, prompt, neuron)
        assert clean[row].item() == pytest.approx(logits.softmax(-1)[token_id].item(), rel=1e-4)
        for head in heads:
            logits, post_ablated = whole_pass(tiny_gemma3, prompt, neuron, head)
            assert ablated[head][row].item() == pytest.approx(logits.softmax(-1)[token_id].item(), rel=1e-4)
            assert drops[head][row].item() == pytest.approx(post_clean - post_ablated, rel=1e-4, abs=1e-6)
    assert all(not torch.allclose(clean, ablated[head]) for head in heads)


def test_ks_test_separates_shifted_samples_and_needs_both_classes():
    result = ks_test([0.5, 0.6, 0.7, 0.8], [0.0, 0.1, 0.05])
    assert result.statistic == 1.0 and result.pvalue < 0.06
    assert ks_test([0.1], []) is None


def test_bad_heads_and_empty_prompts_are_refused(tiny_gpt2, prompts):
    neuron = NeuronRef(layer=2, index=5)
    attribution = attribute_neuron(tiny_gpt2, neuron, [Prompt(text="x", tokens=prompts[0])])
    with pytest.raises(InvalidInputError, match="heads must sit below"):
        ablate_heads(tiny_gpt2, attribution, [HeadRef(layer=2, head=0)])
    with pytest.raises(InvalidInputError, match="head index 9 out of range 0..3"):
        ablate_heads(tiny_gpt2, attribution, [HeadRef(layer=1, head=9)])
    with pytest.raises(InvalidInputError, match="at least one prompt"):
        token_probability_drops(tiny_gpt2, [HeadRef(layer=1, head=0)], 3, [])
